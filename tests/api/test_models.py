"""Task parsing is tolerant; states and options read as plain words."""

from __future__ import annotations

import dataclasses

import pytest

from ocr_watch.api import CreateOptions, Task, TaskState, describe_state


class TestTask:
    def test_full_answer(self) -> None:
        """Every documented field is read, and `file` becomes `file_url`."""
        task = Task.from_data(
            {
                "task_id": "t1", "state": 1, "progress": 100, "file": "https://r/x.txt",
                "created_at": 1, "processed_at": 2.5, "completed_at": "3", "file_pages": 2,
                "ocr_pages": "2", "input_size": 10, "output_size": 5, "type": "x", "next": None,
            }
        )
        assert task == Task("t1", 1, 100, "https://r/x.txt", 1.0, 2.5, 3.0, 2, 2, 10, 5, "")
        assert task.is_done and not task.is_pending and not task.is_failed

    @pytest.mark.parametrize(
        "data",
        [None, [], "x", {}, {"state": "weird"}, {"state": None, "progress": [1]}, {"state": True}],
    )
    def test_odd_answers_never_crash(self, data: object) -> None:
        """Missing or odd-typed fields become defaults: keep polling."""
        task = Task.from_data(data, task_id="t9")
        assert task.task_id == "t9" and task.state == TaskState.QUEUED and task.is_pending

    def test_done_without_url_is_still_pending(self) -> None:
        """State 1 without a URL is not done yet."""
        assert Task.from_data({"state": 1, "file": ""}).is_pending

    @pytest.mark.parametrize("state", [-1, -2, -3, -5, -7, -8, -42])
    def test_negative_states_fail(self, state: int) -> None:
        """Any negative state is a failure with a readable description."""
        task = Task.from_data({"state": state})
        assert task.is_failed
        assert describe_state(state) and "state" not in describe_state(-7)

    def test_frozen(self) -> None:
        """A Task is a value."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            Task("a", 0).state = 1  # type: ignore[misc]


class TestCreateOptions:
    def test_password_masked_and_sync_not_sent(self) -> None:
        """The password never shows in repr; `sync` is never a field."""
        options = CreateOptions(format="pdf", password="hunter2", callback_url="https://cb")
        assert "hunter2" not in repr(options)
        assert options.form_fields() == {
            "format": "pdf", "language": "ChinesePRC,English,Digits",
            "password": "hunter2", "callback_url": "https://cb",
        }
        assert "sync" not in CreateOptions().form_fields()

    def test_callback_token_masked(self) -> None:
        """The callback URL's query carries the callback token: repr shows the URL without it."""
        options = CreateOptions(callback_url="https://ocr.example.com/cb?ocrw=s3cr3t-token")
        assert "s3cr3t-token" not in repr(options)
        assert "https://ocr.example.com/cb?***" in repr(options)
        assert options.form_fields()["callback_url"] == "https://ocr.example.com/cb?ocrw=s3cr3t-token"
