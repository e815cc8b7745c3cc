"""Splits, datasets, exports, models and evaluation (scikit-learn estimator conventions)."""
