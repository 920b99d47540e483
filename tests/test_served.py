"""served.py: what the daemon builds per job and per key (issue 18)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocr_watch.config import load_config
from ocr_watch.journal import Journal, RowOptions
from ocr_watch.pool import PollPlanner
from ocr_watch.served import SHARED_KEY, build_pools, fix_legacy, row_options

STAMP = (10, 1_000, 42)


def config_of(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "ocr-watch.yaml"
    path.write_text(text)
    (tmp_path / "pw").write_text("open-sesame")
    return load_config(path, env={})


def test_an_older_journals_live_rows_get_their_jobs_options_and_other_jobs_rows_wait(tmp_path: Path) -> None:
    config = config_of(tmp_path, "folders: {inbox: in, outbox: out, quarantine: q}\n"
                                 "ocr: {format: docx, language: English, password_file: pw}\n"
                                 "api: {key: k-123456}\n")
    journal = Journal(tmp_path / "j.sqlite3")
    old = journal.add("a.png", STAMP, "txt|German")  # as version 6 wrote it: no options, its key
    fixed_before = journal.add_file("b.png", STAMP, [RowOptions("txt", "German")])[0]
    gone = journal.add_file("c.png", STAMP, [RowOptions("txt", "English")], job="removed")[0]
    served = fix_legacy(config, journal, journal.live_rows())
    assert [row.id for row in served] == [old.id, fixed_before.id], "a removed job's row is not served"
    a, b = served
    assert (a.format, a.language, a.password) == ("txt", "German", "open-sesame"), "its key's, the job's password"
    assert (b.format, b.language, b.password) == ("txt", "German", None), "options fixed at admission stay"
    assert journal.get(gone.id).format == "txt"


def test_jobs_share_the_shared_keys_pool_and_a_job_with_its_own_key_has_its_own(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    config = config_of(tmp_path, """
jobs:
  a: {folders: {inbox: a/in, outbox: a/out, quarantine: a/q}, ocr: {format: [pdf, txt]}}
  b: {folders: {inbox: b/in, outbox: b/out, quarantine: b/q}}
  c: {folders: {inbox: c/in, outbox: c/out, quarantine: c/q}, api: {key: other-key-99}}
api: {key: shared-key-1}
""")
    journal = Journal(tmp_path / "j.sqlite3")
    group, clients = build_pools(config, journal, None, PollPlanner(min_interval_s=1, max_interval_s=30),
                                 on_change=lambda: None, on_released=lambda row, ended: None)
    assert sorted(clients) == sorted([SHARED_KEY, "jobs.c.api"])
    assert group.of("a") is group.of("b") is group.pools[SHARED_KEY]
    assert group.of("c") is group.pools["jobs.c.api"]
    assert [(o.format, o.language) for o in row_options(config.jobs[0], "x/y.png")] == [
        ("pdf", "ChinesePRC,English,Digits"), ("txt", "ChinesePRC,English,Digits")]
    for client in clients.values():
        asyncio.run(client.aclose())
