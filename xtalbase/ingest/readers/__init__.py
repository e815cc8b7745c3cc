"""One module per file format; each exposes ``read(path, **options)`` yielding records or read errors.

Register a new format with one line in :data:`xtalbase.ingest.formats.FORMATS`.
"""
