"""The public surface: exported names and the shape of the error tree callers branch on."""

from __future__ import annotations

import ocr_watch.api as api
from ocr_watch.api import (
    AccountError,
    ApiError,
    PermanentError,
    RateLimited,
    ResultUnavailable,
    ServerError,
    ServiceUnreachable,
    TransientError,
)


def test_exported_members() -> None:
    """__init__ re-exports exactly the public names, and each one exists."""
    assert sorted(api.__all__) == sorted([
        "DEFAULT_TIMEOUT", "AccountError", "ApiError", "CreateOptions", "PermanentError", "PicWishClient",
        "RateLimited", "ResultUnavailable", "ServerError", "ServiceUnreachable", "Task", "TaskState",
        "TokenBucket", "TransientError", "describe_state", "raise_for_task_state",
    ])
    assert all(hasattr(api, name) for name in api.__all__)


def test_tree() -> None:
    """Branches follow what the caller does: retry, quarantine, refetch, or stop."""
    for cls in (ServiceUnreachable, RateLimited, ServerError):
        assert cls.__bases__ == (TransientError,)
    for cls in (TransientError, PermanentError, ResultUnavailable, AccountError):
        assert cls.__bases__ == (ApiError,)
    assert ApiError.__bases__ == (Exception,)


def test_fields_and_plain_message() -> None:
    """str() is the plain message; fields default to None/False."""
    exc = ServerError("the service failed (502)", status_code=502, ambiguous=True)
    assert str(exc) == "the service failed (502)"
    assert (exc.message, exc.status_code, exc.task_state, exc.retry_after, exc.ambiguous) == (
        "the service failed (502)", 502, None, None, True)
    assert PermanentError("x", task_state=-7).task_state == -7
    assert not ServiceUnreachable("down").ambiguous
