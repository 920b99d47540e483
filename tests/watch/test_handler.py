"""Tests for ocr_watch.watch.handler: which watchdog event means which reason."""

from __future__ import annotations

from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from ocr_watch.watch.handler import InboxHandler

ROOT = Path("/in")


def reports(native: bool, *events: object) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    handler = InboxHandler(ROOT, lambda rel, why: seen.append((rel, why)))
    handler.native = native
    for event in events:
        handler.dispatch(event)  # type: ignore[arg-type]
    return seen


def test_a_native_write_means_a_writer_has_it_open_and_its_close_means_ready() -> None:
    assert reports(True, FileCreatedEvent("/in/a.png"), FileModifiedEvent("/in/a.png"),
                   FileClosedEvent("/in/a.png")) == [("a.png", "changed"), ("a.png", "writing"),
                                                      ("a.png", "closed")]


def test_a_polling_write_only_means_changed() -> None:
    assert reports(False, FileModifiedEvent("/in/a.png")) == [("a.png", "changed")]


def test_moves_in_and_out_of_the_inbox_with_full_events() -> None:
    assert reports(True, FileMovedEvent("", "/in/sub/a.png")) == [("sub/a.png", "closed")]
    assert reports(True, FileMovedEvent("/in/a.png", "")) == [("a.png", "gone")]
    assert reports(True, FileMovedEvent("/in/a.png", "/in/b.png")) == [("a.png", "gone"), ("b.png", "closed")]
