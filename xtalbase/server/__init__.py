"""The web face of xtalbase: an OPTIMADE v1 REST API and a curator's pages, served by ``xtalbase serve``.

:mod:`.app` builds the application (FastAPI) around one :class:`~xtalbase.api.Database`; :mod:`.optimade`
answers the OPTIMADE endpoints through the same filter → SQL translation as ``xtalbase query``; :mod:`.pages`
renders the curator's HTML pages. Nothing here writes to the database unless the server was started with
``--allow-writes`` and the request carries the token.
"""
