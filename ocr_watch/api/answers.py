"""What an answer of the service means: each failure translated, once, into the error tree of
`errors.py`, sorted by what the caller can do. Pure functions of the answer, so the client
keeps only the flow (the token bucket, deadlines, retries of 429s).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Literal, NoReturn

import httpx

from .errors import (
    AccountError,
    PermanentError,
    ResultUnavailable,
    ServerError,
    ServiceUnreachable,
)
from .models import Task, describe_state

__all__ = [
    "Kind",
    "decode",
    "parse_retry_after",
    "raise_for_download_status",
    "raise_for_status",
    "raise_for_task_state",
    "raise_transport",
    "read_credits",
    "safe_url",
    "service_message",
]

Kind = Literal["create", "query", "download", "credits"]

_MAX_MESSAGE_CHARS = 300
_CREDIT_WORDS = ("credit", "balance", "quota", "insufficient", "recharge")


def raise_for_task_state(task: Task) -> None:
    """Raise :class:`PermanentError` for a failed task (state < 0); otherwise do nothing."""
    if task.state >= 0:
        return
    reason = describe_state(task.state)
    detail = f" ({task.message})" if task.message and task.message != "success" else ""
    raise PermanentError(
        f"the service could not convert this file: {reason}{detail}",
        task_state=task.state,
    )


def safe_url(url: httpx.URL | str) -> str:
    """The URL without query or credentials (a result URL's signature is a secret too)."""
    parsed = httpx.URL(str(url))
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def raise_transport(kind: Kind, exc: httpx.HTTPError, *, sent_whole: bool = True) -> NoReturn:
    """A transport failure as our error: unreachable (never ambiguous), or a server error that
    is ambiguous for a create sent whole (a task may exist)."""
    where = safe_url(exc.request.url) if _has_request(exc) else "the service"
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        raise ServiceUnreachable(
            f"could not connect to {where}: {type(exc).__name__}", ambiguous=False
        ) from exc
    ambiguous = kind == "create" and sent_whole
    if isinstance(exc, httpx.TimeoutException):
        text = f"timed out waiting for {where} ({type(exc).__name__})"
    elif kind == "create" and not sent_whole:
        text = (f"the connection to {where} broke before the upload was sent whole "
                f"({type(exc).__name__}); no task can have been created")
    else:
        text = f"the connection to {where} broke before the whole answer arrived ({type(exc).__name__})"
    if ambiguous:
        text += "; the task may have been created"
    raise ServerError(text, ambiguous=ambiguous) from exc


def decode(kind: Kind, response: httpx.Response) -> tuple[dict[str, Any], int]:
    """Return the envelope and the effective status (HTTP status, else body status)."""
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    if response.status_code != 200:
        return body, response.status_code
    status = body.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        raise ServerError(
            "the service sent an answer that could not be read",
            status_code=response.status_code,
            ambiguous=kind == "create",
        )
    return body, status


def raise_for_status(kind: Kind, status: int, body: dict[str, Any], api_key: str) -> NoReturn:
    """An answer that is not a success as the error of what the caller can do about it."""
    said = service_message(body, api_key)
    suffix = f": {said}" if said else ""
    lowered = said.lower()
    if status == 402 or (status >= 400 and any(w in lowered for w in _CREDIT_WORDS)):
        raise AccountError(f"the account has no credits left{suffix}", status_code=status, credits=True)
    if status in (401, 403):
        raise AccountError(
            f"the API key was refused or the service is not activated{suffix}",
            status_code=status,
        )
    if status == 404:
        if kind == "query":
            raise ResultUnavailable(
                f"the service no longer knows this task{suffix}",
                status_code=status,
            )
        raise AccountError(
            f"the service has no such endpoint; check the base URL{suffix}", status_code=status
        )
    if status == 413:
        raise PermanentError(f"the file is too large for the service{suffix}", status_code=status)
    if status >= 500:
        # An explicit error answer means the create was not done, except when a gateway
        # gave up waiting (502/504): the service behind it may still have made the task.
        raise ServerError(
            f"the service failed ({status}){suffix}",
            status_code=status,
            ambiguous=kind == "create" and status in (502, 504),
        )
    if 400 <= status < 500:
        raise PermanentError(f"the service rejected the request{suffix}", status_code=status)
    raise ServerError(f"the service gave an unexpected answer ({status}){suffix}", status_code=status)


def service_message(body: dict[str, Any], api_key: str) -> str:
    """The service's own words, trimmed, with the key scrubbed should it be echoed."""
    message = body.get("message")
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())[:_MAX_MESSAGE_CHARS]
    return message.replace(api_key, "***")


def raise_for_download_status(status: int, where: str) -> NoReturn:
    if status == 403:
        raise ResultUnavailable(f"the result URL has expired ({where})", status_code=status)
    if status in (404, 410):
        raise ResultUnavailable(f"the result is no longer available ({where})", status_code=status)
    if status == 429 or status >= 500:
        raise ServerError(f"the result host failed ({status}) for {where}", status_code=status)
    raise ResultUnavailable(f"the result host refused the download ({status}) for {where}", status_code=status)


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        return exc.request is not None  # a property that raises when the error has no request
    except RuntimeError:
        return False


def read_credits(body: dict[str, Any]) -> int | None:
    """The credits left from an answer of ``GET /api/customers/package-credits``; None when
    it cannot be read. Its shape is undocumented (the route is seen in public client code):
    *assumed* ``{"status": 200, "data": {"balance": N}}``, or ``"data": N``; anything else,
    a negative number or a bool is unknown, never an error."""
    data = body.get("data")
    value = data.get("balance") if isinstance(data, dict) else data
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value < 0 or value != int(value):
        return None
    return int(value)
