"""Repositories: the one place each table family's SQL is written (one module per family)."""
