"""Exceptions that carry a message meant for the user (printed as one line by the CLI)."""


class XtalbaseError(Exception):
    """Base class: a user-facing problem (bad input, bad configuration, unreachable database)."""


class ConfigurationError(XtalbaseError):
    """A setting such as the database URL is malformed."""


class DatabaseUnavailable(XtalbaseError):
    """The database server cannot be reached or the file cannot be opened."""


class SchemaError(XtalbaseError):
    """The database is not initialised or not at the schema revision this code expects."""


class NotFound(XtalbaseError):
    """A named object (split, dataset, model, structure, ...) does not exist."""


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM). A ``BaseException``, as ``KeyboardInterrupt`` is, so that
    ``except Exception`` blocks do not swallow it: it unwinds every run (marked failed) and worker pool."""
