"""What the daemon's parts report as it happens, for the metrics: a protocol, and a recorder
that records nothing.

Why a protocol down here: the API client and the pool report events (a request answered, a
file finished, a credit spent) through a recorder given to them at construction. They never
import the metrics module, which imports prometheus_client and reads the journal; the
dependency points down, to this leaf, and a test or an embedding passes nothing (NULL) or
its own recorder.

Every method is called on the event loop's thread, must return at once and must never raise.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = ["NULL", "ApiKind", "NullRecorder", "Outcome", "Recorder"]

ApiKind = Literal["create", "query", "download", "credits"]
Outcome = Literal["done", "quarantined"]


class Recorder(Protocol):
    def api_request(self, kind: ApiKind, code: str) -> None:
        """One request answered with HTTP status `code` ("error": no answer, a transport error)."""

    def file_finished(self, outcome: Outcome, seconds: float | None, job: str = "default") -> None:
        """A file's journey ended (of `job`; a file in several formats: each format's row);
        `seconds` from its admission (None: not known)."""

    def task_done(self, task_id: str, done_at: float) -> None:
        """A task of ours ended done at the service, at wall time `done_at`: one credit billed."""

    def result_stored(self, task_id: str | None, at: float) -> None:
        """A task's result is complete in the outbox at wall time `at`."""

    def possible_double_charge(self) -> None:
        """An upload whose answer was lost is sent again: the service may bill both."""

    def credits_left(self, figure: int | None) -> None:
        """The account's balance as the service last gave it (None: unknown)."""


class NullRecorder:
    """Records nothing: the default, and what runs when metrics are off."""

    def api_request(self, kind: ApiKind, code: str) -> None:
        pass

    def file_finished(self, outcome: Outcome, seconds: float | None, job: str = "default") -> None:
        pass

    def task_done(self, task_id: str, done_at: float) -> None:
        pass

    def result_stored(self, task_id: str | None, at: float) -> None:
        pass

    def possible_double_charge(self) -> None:
        pass

    def credits_left(self, figure: int | None) -> None:
        pass


NULL: Recorder = NullRecorder()
