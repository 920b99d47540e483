"""Client for the PicWish Document OCR API: the only package that talks to the paid service."""

from .client import DEFAULT_TIMEOUT, PicWishClient, raise_for_task_state
from .errors import (
    AccountError,
    ApiError,
    PermanentError,
    RateLimited,
    ResultUnavailable,
    ServerError,
    ServiceUnreachable,
    TransientError,
)
from .models import CreateOptions, Task, TaskState, describe_state
from .ratelimit import TokenBucket

__all__ = [
    "DEFAULT_TIMEOUT",
    "AccountError",
    "ApiError",
    "CreateOptions",
    "PermanentError",
    "PicWishClient",
    "RateLimited",
    "ResultUnavailable",
    "ServerError",
    "ServiceUnreachable",
    "Task",
    "TaskState",
    "TokenBucket",
    "TransientError",
    "describe_state",
    "raise_for_task_state",
]
