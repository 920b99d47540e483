"""Emulator knobs in one immutable value.

Kept separate so the CLI, the control route ``POST /_emulator/settings`` and
``Emulator.update`` all validate changes the same way, and so a test can build
settings without starting any server.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .ratelimit import LIMITERS


@dataclass(frozen=True)
class EmulatorSettings:
    """Everything that shapes the emulator's behaviour (see the package docstring)."""

    api_keys: tuple[str, ...] = ("emu-key",)
    requests_per_second: float = 2.0
    burst: float | None = None
    # "bucket": a token bucket of capacity effective_burst; "gateway": one request per
    # 1/requests_per_second per key, no burst, like nginx limit_req (see ratelimit.py).
    limiter: str = "bucket"
    processing_seconds: float = 3.0
    processing_seconds_per_mb: float = 0.0
    processing_jitter: float = 0.0
    result_ttl_seconds: float = 3600.0
    task_retention_seconds: float = 3600.0
    max_upload_bytes: int = 200 * 1024 * 1024
    credits: int | None = None
    retry_after_seconds: float | None = None
    seed: int = 0
    # False: a result URL's expiry counts from the task's completion and every query returns
    # the same URL. True: like object storage signing per request, a query after the first
    # that returned the URL returns a freshly signed one, valid result_ttl_seconds from then.
    fresh_url_per_query: bool = False
    # One upload bandwidth shared by all connections (request bodies are read no faster);
    # 0: unlimited. See uplink.py.
    upload_bytes_per_second: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.api_keys, str):
            object.__setattr__(self, "api_keys", (self.api_keys,))
        else:
            object.__setattr__(self, "api_keys", tuple(self.api_keys))
        for name in (
            "requests_per_second",
            "processing_seconds",
            "processing_seconds_per_mb",
            "processing_jitter",
            "result_ttl_seconds",
            "task_retention_seconds",
            "upload_bytes_per_second",
        ):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.processing_jitter > 1:
            raise ValueError("processing_jitter must be <= 1")
        if self.burst is not None and self.burst <= 0:
            raise ValueError("burst must be > 0")
        if self.limiter not in LIMITERS:
            raise ValueError(f"limiter must be one of {', '.join(LIMITERS)}")
        if self.max_upload_bytes < 0:
            raise ValueError("max_upload_bytes must be >= 0")
        if self.credits is not None and self.credits < 0:
            raise ValueError("credits must be >= 0")

    @property
    def effective_burst(self) -> float:
        """Token-bucket capacity: ``burst`` or ``max(1, requests_per_second)``."""
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, float(self.requests_per_second))

    def replace(self, **changes: Any) -> EmulatorSettings:
        """Return a copy with ``changes`` applied; unknown names raise ``TypeError``."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        """Settings as JSON-able data, with the API keys redacted to a count."""
        data = dataclasses.asdict(self)
        data["api_keys"] = len(self.api_keys)
        data["effective_burst"] = self.effective_burst
        return data
