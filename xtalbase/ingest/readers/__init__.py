"""One module per file format; each declares ``READER``, a :class:`xtalbase.ingest.formats.Reader` whose
``read(path, **options)`` yields records or read errors.

A multi-record format also declares ``split(path)``: its records as a list or a lazy iterator (``None`` when
the file holds no list of records), any share of which ``read(path, rows_=share)`` reads alone, so that workers
share one file; and ``locator_of(item)``, the locator ``read`` gives that record, so that each share is told only
which of its own records are already stored.

Register a new format with one line in :data:`xtalbase.ingest.formats.READERS`.
"""
