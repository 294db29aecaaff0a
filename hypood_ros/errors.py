"""Exception types whose message is meant to be shown to a user as one line."""


class HypoodError(Exception):
    """Base class: a problem with input, configuration or files, not a bug."""


class CheckpointError(HypoodError):
    """A checkpoint is missing, corrupt, or not in a layout this project recognises."""


class BackendError(HypoodError):
    """A runtime backend cannot load or run a model (bad file, wrong shape, wrong device)."""


class FrameError(HypoodError):
    """One input frame cannot be used (bad encoding, size, or bytes); the next one may be fine."""


class ConfigError(HypoodError):
    """An invalid parameter or configuration value."""
