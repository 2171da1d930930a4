"""Error types. Every error a user can cause is a GdsolverError with a one-line message."""


class GdsolverError(Exception):
    """A user-facing error: bad input, unsupported model, solver limit. The CLI prints
    its message on one line and exits with code 2."""


class FormatError(GdsolverError):
    """A file is missing, truncated, corrupt or of the wrong format/version."""


class LicenseLimitError(GdsolverError):
    """The solver's licence does not allow a model of this size."""
