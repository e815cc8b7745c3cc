"""Reading structure and DFT files, validating them, identifying duplicates and computing XRD.

``read_structures(path, format=None)`` is the single reading entry point;
``xtalbase.connect(...).ingest(paths, ...)`` stores what it reads.
"""

from xtalbase.ingest.formats import FORMATS, detect_format, read_structures

__all__ = ["FORMATS", "detect_format", "read_structures"]
