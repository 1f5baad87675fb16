"""``GridError``: what planning a sweep raises (``plan``, ``variants``)."""

__all__ = ["GridError"]


class GridError(ValueError):
    """A ``--grid`` argument or ``--variants`` file that cannot be read, or a sweep that cannot run."""
