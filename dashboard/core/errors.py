"""The one exception family the product raises for a user's mistake or bad input.

Pages show ``err.message``; the CLI prints it and exits with ``err.exit_code``.
"""

from __future__ import annotations


class CockpitError(Exception):
    """Base of every error a user should see as a message, not a traceback."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CockpitError):
    """cockpit.toml is missing, malformed, or names something that does not exist."""

    exit_code = 2


class SourceError(CockpitError):
    """An input could not be read or does not have the shape its mapping promises."""


class QueryError(CockpitError):
    """A named query is unknown, its parameters are wrong, or the engine refused it."""

    exit_code = 2


class AccessDenied(QueryError):
    """The query reads a relation the user's role has no view of; ``detail`` is the engine's line."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class QueryTimeout(QueryError):
    """The query ran past its time limit and was stopped."""
