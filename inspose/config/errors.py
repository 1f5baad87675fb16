"""``ConfigError``: what loading and validating a config raise."""

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A config key that does not exist or a value InsPose cannot use."""
