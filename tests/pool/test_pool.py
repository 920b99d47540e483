"""The pool in-process against the emulator: each error class, each resume point, the window."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocr_watch.api import CreateOptions, PicWishClient
from ocr_watch.emulator import Emulator, render_result
from ocr_watch.intake.identity import sha256_file
from ocr_watch.journal import FileState
from ocr_watch.testing import EMU_KEY, png_bytes, sha256
from tests.pool.harness import Harness, finished

pytestmark = [pytest.mark.timeout(60), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # anyio's pytest plugin ships with httpx's own dependency


@pytest.fixture
def harness(tmp_path: Path, emulator: Emulator) -> Harness:
    return Harness(tmp_path, emulator)


class TestHappyPath:
    async def test_a_file_is_created_polled_downloaded_and_archived(self, harness: Harness) -> None:
        data = png_bytes(1)
        row = harness.drop("in/a.png", data)
        await harness.run(finished(1), rows=[row])
        assert (harness.outbox / "in/a.txt").read_bytes() == render_result(sha256(data), "a.png", "txt")
        assert (harness.archive / "in/a.png").read_bytes() == data
        final = harness.journal.get(row.id)
        assert final.state is FileState.DONE and final.task_id and final.output_rel == "in/a.txt"

    async def test_past_queue_size_rows_wait_in_the_journal_and_all_finish_in_order(
        self, tmp_path: Path, emulator: Emulator
    ) -> None:
        harness = Harness(tmp_path, emulator, queue_size=2, max_in_flight=1)
        rows = [harness.drop(f"f{n}.png", png_bytes(n)) for n in range(7)]
        pool = await harness.run(finished(7), rows=rows)
        assert pool.stats.done == 7
        created = [t["source_name"] for t in sorted(emulator.tasks(), key=lambda t: t["created_t"])]
        assert created == [f"f{n}.png" for n in range(7)]


    async def test_two_copies_of_one_content_queued_together_share_one_task(
        self, harness: Harness, emulator: Emulator
    ) -> None:
        data = png_bytes(13)
        rows = [harness.drop("one/same.png", data), harness.drop("two/same.png", data)]
        await harness.run(finished(2), rows=rows)
        assert emulator.stats()["tasks_by_sha256"] == {sha256(data): 1}
        expected = render_result(sha256(data), "same.png", "txt")
        assert [(harness.outbox / f"{d}/same.txt").read_bytes() for d in ("one", "two")] == [expected] * 2


class TestResume:
    async def test_a_row_polling_a_known_task_is_not_uploaded_again(self, harness: Harness, emulator: Emulator) -> None:
        data = png_bytes(2)
        row = harness.drop("p.png", data)
        async with PicWishClient(emulator.base_url, EMU_KEY, requests_per_second=1000) as client:
            task_id = await client.create_task(harness.inbox / "p.png", CreateOptions())
        row = harness.journal.uploading(row.id, sha256=sha256(data))
        row = harness.journal.polling(row.id, task_id=task_id, task_created_at=0.0 + row.first_seen,
                                      sha256=sha256(data))
        await harness.run(finished(1), resume=[row])
        assert emulator.stats()["creates"] == 1
        assert (harness.outbox / "p.txt").exists()

    async def test_a_row_caught_uploading_is_uploaded_again(self, harness: Harness, emulator: Emulator) -> None:
        row = harness.drop("u.png", png_bytes(3))
        row = harness.journal.uploading(row.id, sha256=None)
        await harness.run(finished(1), resume=[row])
        assert emulator.stats()["creates"] == 1
        assert harness.journal.get(row.id).state is FileState.DONE

    async def test_a_row_caught_finishing_after_its_move_is_simply_marked_done(
        self, harness: Harness, emulator: Emulator
    ) -> None:
        data = png_bytes(4)
        row = harness.drop("m.png", data)
        row = harness.journal.polling(row.id, task_id="t-1", task_created_at=None, sha256=sha256(data))
        row = harness.journal.downloading(row.id, result_url="http://x/", result_url_at=row.first_seen)
        row = harness.journal.output_reserved(row.id, "m.txt")
        row = harness.journal.finishing(row.id)
        (harness.outbox / "m.txt").write_text("result")
        (harness.inbox / "m.png").rename(harness.archive / "m.png")
        await harness.run(finished(1), resume=[row])
        assert harness.journal.get(row.id).state is FileState.DONE
        assert (harness.archive / "m.png").read_bytes() == data
        assert emulator.stats()["requests_total"] == 0

    async def test_a_row_caught_downloading_whose_output_is_in_place_does_not_download_again(
        self, harness: Harness, emulator: Emulator
    ) -> None:
        row = harness.drop("d.png", png_bytes(5))
        row = harness.journal.polling(row.id, task_id="t-2", task_created_at=None, sha256="0" * 64)
        row = harness.journal.downloading(row.id, result_url="http://x/", result_url_at=row.first_seen)
        row = harness.journal.output_reserved(row.id, "d.txt")
        (harness.outbox / "d.txt").write_text("complete result")
        await harness.run(finished(1), resume=[row])
        assert (harness.archive / "d.png").exists()
        assert (harness.outbox / "d.txt").read_text() == "complete result"
        assert emulator.stats()["downloads"] == 0


class TestErrors:
    async def test_server_errors_on_create_are_retried_and_counted(self, harness: Harness, emulator: Emulator) -> None:
        emulator.add_fault("http_500", route="create", count=2)
        row = harness.drop("r.png", png_bytes(6))
        await harness.run(finished(1), rows=[row])
        final = harness.journal.get(row.id)
        assert final.state is FileState.DONE and final.attempts == 2
        assert emulator.stats()["create_requests"] == 3 and emulator.stats()["creates"] == 1

    async def test_a_service_that_keeps_failing_quarantines_after_max_attempts(
        self, harness: Harness, emulator: Emulator
    ) -> None:
        emulator.add_fault("body_500", route="create", count=10)
        row = harness.drop("s.png", png_bytes(7))
        await harness.run(finished(1), rows=[row])
        report = harness.report("s.png")
        assert report["stage"] == "create" and report["attempts"] == 3
        assert "failed 3 times" in report["reason"]
        assert emulator.stats()["create_requests"] == 3

    async def test_a_refused_key_pauses_work_and_quarantines_nothing(self, harness: Harness,
                                                                     emulator: Emulator) -> None:
        rows = [harness.drop(f"k{n}.png", png_bytes(n)) for n in range(8)]
        pool = await harness.run(lambda p: p.account_problem is not None, key="wrong-key", rows=rows)
        assert pool.stats.quarantined == 0
        assert all((harness.inbox / f"k{n}.png").exists() for n in range(8))
        # One refusal pauses everything: only uploads already under way beside it were sent.
        assert 1 <= emulator.stats()["create_requests"] <= harness.settings.max_uploads < 8
        assert "wrong-key" not in (pool.account_problem or "")

    async def test_an_expired_result_url_quarantines_with_the_task_id(self, harness: Harness,
                                                                      emulator: Emulator) -> None:
        emulator.add_fault("expired_url")
        row = harness.drop("e.png", png_bytes(8))
        await harness.run(finished(1), rows=[row])
        report = harness.report("e.png")
        assert report["stage"] == "download" and report["task_id"] in report["reason"]
        assert "expired" in report["reason"]

    async def test_a_download_that_breaks_halfway_is_retried_and_the_output_is_whole(
        self, harness: Harness, emulator: Emulator
    ) -> None:
        emulator.add_fault("broken_download")
        data = png_bytes(9)
        row = harness.drop("b.png", data)
        await harness.run(finished(1), rows=[row])
        assert (harness.outbox / "b.txt").read_bytes() == render_result(sha256(data), "b.png", "txt")
        assert emulator.stats()["downloads"] == 2
        assert [p.name for p in harness.outbox.iterdir()] == ["b.txt"], "no temp file left"

    async def test_an_outbox_that_cannot_be_written_is_waited_for_not_blamed_on_the_file(
        self, harness: Harness, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Disk full while saving a paid result: retry until it fits; the source is not quarantined."""
        real = PicWishClient.download_result
        failures = iter([OSError(28, "No space left on device")] * 2)

        async def full_then_fine(self: PicWishClient, url: str, dest: Path, *, mode: int = 0o666) -> int:
            failure = next(failures, None)
            if failure is not None:
                raise failure
            return await real(self, url, dest)

        monkeypatch.setattr(PicWishClient, "download_result", full_then_fine)
        row = harness.drop("full.png", png_bytes(14))
        await harness.run(finished(1), rows=[row])
        final = harness.journal.get(row.id)
        assert final.state is FileState.DONE and (harness.outbox / "full.txt").exists()
        assert list(harness.quarantine.iterdir()) == []
        assert emulator.stats()["creates"] == 1

    async def test_a_task_that_never_finishes_times_out_into_quarantine(
        self, tmp_path: Path, emulator: Emulator
    ) -> None:
        harness = Harness(tmp_path, emulator, task_timeout_s=0.5)
        emulator.update(processing_seconds=30)
        row = harness.drop("slow.png", png_bytes(10))
        await harness.run(finished(1), rows=[row])
        report = harness.report("slow.png")
        assert report["stage"] == "poll" and report["task_id"] in report["reason"]
        assert "no result after" in report["reason"]

    async def test_a_lost_create_answer_is_retried_and_costs_one_extra_task(
        self, harness: Harness, emulator: Emulator
    ) -> None:
        """The documented worst case: the task was made but its id never reached us."""
        emulator.add_fault("drop", route="create")
        data = png_bytes(11)
        row = harness.drop("x.png", data)
        await harness.run(finished(1), rows=[row])
        assert harness.journal.get(row.id).state is FileState.DONE
        assert emulator.stats()["tasks_by_sha256"][sha256(data)] == 2

    async def test_a_file_removed_before_upload_is_reported_not_lost_silently(
        self, harness: Harness, emulator: Emulator
    ) -> None:
        row = harness.drop("gone.png", png_bytes(12))
        (harness.inbox / "gone.png").unlink()
        await harness.run(finished(1), rows=[row])
        report = harness.report("gone.png")
        assert report["source_missing"] is True and "disappeared" in report["reason"]
        assert emulator.stats()["create_requests"] == 0


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == sha256(b"abc" * 1000)
