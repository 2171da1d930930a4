"""Error types. Every error a user can cause is a GdsolverError with a one-line message.

Each type is also the builtin exception it behaves like, so callers that catch the
builtin (``except ValueError``, ``except TypeError``, ``except FileNotFoundError``) keep
working: every GdsolverError is a ValueError (a bad value: an unknown task, NaN in X, a
label out of range, a negative learning rate, a corrupt file), an argument of the wrong type
an ArgTypeError (also a TypeError), a missing file a MissingFileError (also a
FileNotFoundError), a missing solver package an ImportError, a model a frontend or backend
cannot handle a NotImplementedError."""


class GdsolverError(ValueError):
    """A user-facing error: bad input, unsupported model, solver limit. The CLI prints
    its message on one line and exits with code 2."""


class ArgTypeError(GdsolverError, TypeError):
    """An argument of the wrong type (a string where a number is expected, not an instance
    where a MilpInstance is): a TypeError, never silently converted."""


class FormatError(GdsolverError):
    """A file is missing, truncated, corrupt or of the wrong format/version."""


class MissingFileError(FormatError, FileNotFoundError):
    """A file to read does not exist (a FileNotFoundError as well)."""


class LicenseLimitError(GdsolverError):
    """The solver's licence does not allow a model of this size."""


class InstanceError(GdsolverError, ValueError):
    """A MilpInstance (or a solution for it) is inconsistent: shapes, index ranges,
    NaN, bounds, block layout."""


class OptionError(GdsolverError, ValueError):
    """A solve option (common or solver-native) is unknown or has an invalid value."""


class BackendUnavailableError(GdsolverError, ImportError):
    """A solver backend's package is not installed or cannot be imported."""


class UnsupportedModelError(GdsolverError, NotImplementedError):
    """The model uses something this component cannot handle (e.g. a MIP given to an
    LP-only backend, a layer type a frontend does not know)."""


class SolveInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a solve. A KeyboardInterrupt, so that a caller who does
    not look for it stops as on any Ctrl-C; `result` holds what the solver had when it
    stopped (a FEASIBLE result with the incumbent), or None when it had no point."""

    def __init__(self, result=None) -> None:
        super().__init__("solve interrupted")
        self.result = result
