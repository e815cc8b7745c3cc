"""Reading structure and DFT files, validating them, identifying duplicates and computing XRD."""
