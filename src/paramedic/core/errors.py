"""The exception tree, one place for all of paramedic.

    ParamedicError
     ├── ConfigError            wrong configuration or runbook file (user mistake, exit 1)
     ├── PayloadError           a malformed alert payload (HTTP 422)
     ├── TemplateError          a runbook template failed to render or a value failed validation
     ├── StoreUnavailable       the database cannot be reached (HTTP 503, retry later)
     └── ActionError            an executor failed
          ├── RetryableError    transient: timeout, connection refused, 5xx — may be retried
          └── PermanentError    the target is gone or refused the request — never retried

The retry meaning lives in the type, so the engine never guesses from a message.
"""

from __future__ import annotations

from datetime import timedelta


class ParamedicError(Exception):
    """Base of every error paramedic raises on purpose."""


class ConfigError(ParamedicError):
    """A configuration or runbook problem the user must fix."""


class PayloadError(ParamedicError):
    """An alert payload that does not have the documented shape. ``reason`` is a short code for
    metrics and logs (``missing_alertname``, ``bad_type``, ``invalid_unicode``, …)."""

    def __init__(self, message: str, *, field: str = "", reason: str = "malformed") -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


class TemplateError(ParamedicError):
    """A template failed to render, or a rendered or referenced value failed its pattern."""

    def __init__(self, message: str, *, param: str = "") -> None:
        super().__init__(message)
        self.param = param


class StoreUnavailable(ParamedicError):
    """The database is unreachable; the caller should answer 503 and let the sender retry."""


class ActionError(ParamedicError):
    """An executor could not carry out an action."""

    retryable: bool = False

    def __init__(self, message: str, *, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason


class RetryableError(ActionError):
    """A transient failure: the same action may succeed if tried again. ``retry_after`` is how long
    the other side asked to be left alone (HTTP ``Retry-After``, a rate limit's reset), if it said."""

    retryable = True

    def __init__(self, message: str, *, reason: str = "failed", retry_after: timedelta | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class PermanentError(ActionError):
    """A failure that retrying cannot fix (target gone, request refused, bad arguments)."""
