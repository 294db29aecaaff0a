"""Exception types whose message is meant to be shown to a user as one line.

The `hypood` command line prints them as `hypood: error: MESSAGE` and exits with `exit_code(exc)`:
2 when the command line itself cannot work (a bad value, path or combination of options), 1 when
the work failed on the data, the model or the machine. Anything else is a bug and keeps its traceback.
"""


class HypoodError(Exception):
    """Base class: a problem with input, configuration or files, not a bug."""

    exit_code = 1


class UsageError(HypoodError):
    """The command line cannot work as given: a bad option value, path, or combination of options."""

    exit_code = 2


class CheckpointError(HypoodError):
    """A checkpoint is missing, corrupt, or not in a layout this project recognises."""


class BackendError(HypoodError):
    """A runtime backend cannot load or run a model (bad file, wrong shape, wrong device)."""


class FrameError(HypoodError):
    """One input frame cannot be used (bad encoding, size, or bytes); the next one may be fine."""


class ConfigError(HypoodError):
    """An invalid parameter or configuration value."""

    exit_code = 2


class MissingDependencyError(HypoodError):
    """An optional package that this command needs is not installed."""


def exit_code(exc: BaseException) -> int:
    """The process exit status for an expected failure: 2 for usage and configuration, 1 otherwise."""
    return int(getattr(exc, "exit_code", 1))
