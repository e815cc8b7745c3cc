"""Descriptors of compositions and structures: vendored element tables, compositional statistics, structural
fingerprints, and recipes that are stored, hashed and cached like XRD recipes."""
