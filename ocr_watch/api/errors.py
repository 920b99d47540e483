"""Errors raised by the PicWish client, grouped by what the caller can do about them.

Every failure that leaves :mod:`ocr_watch.api` is one of these; httpx errors and odd
answers are translated once, in the client, and chained with ``from``::

    ApiError
     ├── TransientError          try again later, with backoff and jitter
     │    ├── ServiceUnreachable the request never reached the service (ambiguous=False)
     │    ├── RateLimited        a 429 that outlived the client's own retries
     │    └── ServerError        5xx, malformed answer, connection lost mid-response
     ├── PermanentError          this file can never succeed as sent: quarantine it
     ├── ResultUnavailable       the result can no longer be fetched (URL expired, task forgotten)
     └── AccountError           bad key, no credits, wrong endpoint: stop taking work

``ambiguous`` on a :class:`TransientError` is True when the service may have acted on the
request anyway (a create whose answer was lost may have made a task that will be billed).

Messages are plain words meant for people (they end up in quarantine files). The client
never puts the API key, request headers or result-URL signatures into them.
"""

from __future__ import annotations

__all__ = [
    "AccountError",
    "ApiError",
    "PermanentError",
    "RateLimited",
    "ResultUnavailable",
    "ServerError",
    "ServiceUnreachable",
    "TransientError",
]


class ApiError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        task_state: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.task_state = task_state

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        fields = [repr(self.message)]
        if self.status_code is not None:
            fields.append(f"status_code={self.status_code}")
        if self.task_state is not None:
            fields.append(f"task_state={self.task_state}")
        return f"{type(self).__name__}({', '.join(fields)})"


class TransientError(ApiError):
    """Worth retrying later with backoff and jitter."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        task_state: int | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code, task_state=task_state)
        self.retry_after = retry_after
        self.ambiguous = ambiguous

    def __repr__(self) -> str:
        base = super().__repr__()[:-1]
        return f"{base}, retry_after={self.retry_after!r}, ambiguous={self.ambiguous})"


class ServiceUnreachable(TransientError):
    """Connection refused or timed out, DNS failure: the service never saw the request."""


class RateLimited(TransientError):
    """The service kept answering 429 after the client's own retries."""


class ServerError(TransientError):
    """The service failed or its answer was lost or unreadable."""


class PermanentError(ApiError):
    """This file, as sent, will never succeed (bad parameters, too large, failed task)."""


class ResultUnavailable(ApiError):
    """The result can no longer be fetched: the URL expired or the task was forgotten."""


class AccountError(ApiError):
    """A problem with the account or setup, not the file: stop taking work.

    ``credits``: the account is out of credits (new tasks are refused; tasks already paid
    for can still be queried), rather than the key or setup being refused.
    """

    def __init__(self, message: str, *, credits: bool = False, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.credits = credits
