"""Jobs end to end (issue 18): one daemon serves several inboxes on one key, each file with its
job's or rule's options, fairly; hooks run after a file's state is final."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ocr_watch.emulator import Emulator
from ocr_watch.testing import EMU_KEY, Daemon, free_port, png_bytes, wait_for

pytestmark = pytest.mark.timeout(120)

SECRET_PW = "pdf-open-sesame"


def write_jobs(root: Path, base_url: str, jobs: dict[str, dict[str, Any]], **sections: Any) -> Path:
    """A config of `jobs` below `root` (each job's folders named after it), with the tests'
    fast defaults; `sections` replace the defaults' top-level sections."""
    for name, job in jobs.items():
        job.setdefault("folders", {key: f"{name}/{key}" for key in ("inbox", "outbox", "quarantine", "archive")})
        (root / name / "inbox").mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "jobs": jobs,
        "api": {"base_url": base_url, "key": EMU_KEY, "requests_per_second": 50},
        "poll": {"interval_seconds": 0.1, "timeout_seconds": 60},
        "watch": {"settle_seconds": 0.2, "rescan_seconds": 0},
        "retry": {"backoff_initial_seconds": 0.1, "backoff_max_seconds": 1},
        "state_dir": "state",
        **sections,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def drop(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_bytes(data)
    tmp.rename(path)


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_three_jobs_on_one_key_each_file_with_its_jobs_or_rules_options(
    tmp_path: Path, make_emulator: Callable[..., Emulator], daemon_factory: Callable[[Path], Daemon]
) -> None:
    """Three jobs with their own formats and languages, and rules, share one key at the
    service's rate: every output where its job says, every task asked for with the file's
    options, not one 429."""
    emulator = make_emulator(processing_seconds=0.1, requests_per_second=8)
    (tmp_path / "contracts.pw").write_text(SECRET_PW)
    config = write_jobs(tmp_path, emulator.base_url, {
        "invoices": {"ocr": {"format": "xlsx", "language": "English,Digits"}},
        "letters": {"ocr": {"format": "docx", "language": "English"}, "on_success": "keep"},
        "contracts": {"ocr": {"format": "pdf"}, "rules": [
            {"match": "china/**", "ocr": {"language": "ChinesePRC,English,Digits", "format": "txt"}},
            {"match": "**/*-secret.png", "ocr": {"password_file": str(tmp_path / "contracts.pw")}},
        ]},
    }, api={"base_url": emulator.base_url, "key": EMU_KEY, "requests_per_second": 8})
    daemon = daemon_factory(config).start()
    daemon.wait_event("watching", count=3)
    dropped = {"invoices": ["i0.png", "i1.png"], "letters": ["l0.png", "sub/l1.png"],
               "contracts": ["c0.png", "china/c1.png", "deep/c2-secret.png"]}
    for n, (job, name) in enumerate((job, name) for job, names in dropped.items() for name in names):
        drop(tmp_path / job / "inbox" / name, png_bytes(n))
    wait_for(lambda: len(files(tmp_path / "invoices" / "archive")) == 2
             and len(files(tmp_path / "contracts" / "archive")) == 3
             and len([e for e in daemon.events() if e.get("event") == "file_done" and e.get("job") == "letters"]) == 2,
             60, what="every job's files done")
    assert daemon.terminate() == 0
    assert files(tmp_path / "invoices" / "outbox") == ["i0.xlsx", "i1.xlsx"]
    assert files(tmp_path / "letters" / "outbox") == ["l0.docx", "sub/l1.docx"]
    assert files(tmp_path / "letters" / "inbox") == ["l0.png", "sub/l1.png"], "on_success: keep, that job's"
    assert files(tmp_path / "contracts" / "outbox") == ["c0.pdf", "china/c1.txt", "deep/c2-secret.pdf"]
    asked = {t["source_name"]: (t["format"], t["language"], t["password"]) for t in emulator.tasks()}
    assert asked == {
        "i0.png": ("xlsx", "English,Digits", None), "i1.png": ("xlsx", "English,Digits", None),
        "l0.png": ("docx", "English", None), "l1.png": ("docx", "English", None),
        "c0.png": ("pdf", "ChinesePRC,English,Digits", None),
        "c1.png": ("txt", "ChinesePRC,English,Digits", None),
        "c2-secret.png": ("pdf", "ChinesePRC,English,Digits", SECRET_PW),
    }
    assert emulator.stats()["rate_limited"] == 0
    admitted = {(e["job"], e["file"]) for e in daemon.events() if e.get("event") == "file_admitted"}
    assert admitted == {(job, name) for job, names in dropped.items() for name in names}
    assert SECRET_PW not in daemon.log_path.read_text()


def test_a_quiet_jobs_file_does_not_wait_behind_a_busy_jobs_backlog(
    tmp_path: Path, make_emulator: Callable[..., Emulator], daemon_factory: Callable[[Path], Daemon]
) -> None:
    """300 files of one job admitted, then one of another: that one is done within a few
    seconds, while most of the busy job's still wait (round robin at the window and the
    upload gate; bench/jobs.py runs it at the 2 req/s quota)."""
    emulator = make_emulator(processing_seconds=0.1, requests_per_second=10)
    config = write_jobs(tmp_path, emulator.base_url, {"busy": {}, "quiet": {}},
                        api={"base_url": emulator.base_url, "key": EMU_KEY, "requests_per_second": 10},
                        pool={"max_in_flight": 16})
    daemon = daemon_factory(config).start()
    daemon.wait_event("watching", count=2)
    busy = 300
    for n in range(busy):
        drop(tmp_path / "busy" / "inbox" / f"b{n:03d}.png", png_bytes(n))
    wait_for(lambda: sum(1 for e in daemon.events() if e.get("event") == "file_admitted") == busy, 30,
             what="the busy job's files admitted")
    drop(tmp_path / "quiet" / "inbox" / "q.png", png_bytes(9999))
    dropped = time.monotonic()
    wait_for(lambda: files(tmp_path / "quiet" / "outbox") == ["q.txt"], 20, what="the quiet file done")
    waited = time.monotonic() - dropped
    busy_done = len(files(tmp_path / "busy" / "outbox"))
    daemon.stop()
    assert waited < 5.0, f"the quiet file took {waited:.1f} s"
    assert busy_done < busy / 2, f"{busy_done} of the busy job's {busy} files were done first"
    assert emulator.stats()["rate_limited"] == 0


HOOK = """
import os, sys, time
names = ("OCRW_EVENT", "OCRW_JOB", "OCRW_SOURCE", "OCRW_OUTPUTS", "OCRW_REASON", "OCRW_TASK_IDS")
with open(sys.argv[1], "a") as out:
    out.write(repr({name: os.environ.get(name) for name in names}) + "\\n")
    out.write(repr(sorted(os.environ)) + "\\n")
if sys.argv[2] == "sleep":
    time.sleep(30)
sys.exit(int(sys.argv[3]))
"""


def test_hooks_get_the_files_facts_and_a_failing_or_hanging_hook_changes_nothing(
    tmp_path: Path, emulator: Emulator, daemon_factory: Callable[[Path], Daemon]
) -> None:
    """on_done after the output and the archive move, on_quarantine after the report, with the
    documented variables and nothing of the daemon's key; one exits 1, one hangs past its
    timeout and is killed: both logged, and every file stays where it ended."""
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    done_log, bad_log = tmp_path / "done.log", tmp_path / "bad.log"
    config = write_jobs(tmp_path, emulator.base_url, {
        "good": {"hooks": {"on_done": [sys.executable, str(script), str(done_log), "-", "0"],
                           "on_quarantine": [sys.executable, str(script), str(done_log), "-", "0"]}},
        "bad": {"hooks": {"on_done": [sys.executable, str(script), str(bad_log), "sleep", "0"],
                          "on_quarantine": [sys.executable, str(script), str(bad_log), "-", "1"],
                          "timeout_seconds": 0.5}},
    })
    daemon = daemon_factory(config).start()
    daemon.wait_event("watching", count=2)
    drop(tmp_path / "good" / "inbox" / "a.png", png_bytes(1))
    drop(tmp_path / "good" / "inbox" / "x__state_-5__.png", png_bytes(2))  # the service fails it
    drop(tmp_path / "bad" / "inbox" / "b.png", png_bytes(3))
    drop(tmp_path / "bad" / "inbox" / "y__state_-5__.png", png_bytes(4))
    daemon.wait_event("hook_timeout")
    daemon.wait_event("hook_failed")
    daemon.wait_event("hook_done", count=2)
    assert daemon.terminate() == 0
    good = tmp_path / "good"
    seen = [ast.literal_eval(line) for line in done_log.read_text().splitlines()]
    facts = {entry["OCRW_EVENT"]: entry for entry in seen[0::2]}
    task_ids = {t["source_name"]: t["task_id"] for t in emulator.tasks()}
    assert facts["done"] == {
        "OCRW_EVENT": "done", "OCRW_JOB": "good", "OCRW_SOURCE": str((good / "archive" / "a.png").resolve()),
        "OCRW_OUTPUTS": str((good / "outbox" / "a.txt").resolve()), "OCRW_REASON": "",
        "OCRW_TASK_IDS": task_ids["a.png"]}
    quarantined = facts["quarantined"]
    assert quarantined["OCRW_SOURCE"] == str((good / "quarantine" / "x__state_-5__.png").resolve())
    assert quarantined["OCRW_OUTPUTS"] == "" and quarantined["OCRW_REASON"]
    assert (good / "quarantine" / "x__state_-5__.png.error.json").exists(), "the report came first"
    for names in seen[1::2]:
        assert set(names) <= {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "PWD", "SHLVL", "_", "LC_CTYPE"} | {
            n for n in names if n.startswith(("OCRW_", "LC_"))}, names
    bad = tmp_path / "bad"
    assert files(bad / "archive") == ["b.png"] and files(bad / "outbox") == ["b.txt"]
    assert files(bad / "quarantine") == ["y__state_-5__.png", "y__state_-5__.png.error.json"]
    assert files(bad / "inbox") == []
    assert EMU_KEY not in done_log.read_text() + bad_log.read_text()


def test_several_formats_two_outputs_two_credits_and_a_retry_pays_only_for_the_one_that_failed(
    tmp_path: Path, emulator: Emulator, daemon_factory: Callable[[Path], Daemon]
) -> None:
    """format: [pdf, txt] is a task and a credit each; the source is archived once both are
    complete. When the txt task fails, the pdf stays in the outbox, the source goes to
    quarantine with a report naming txt, and the file moved back pays for txt alone."""

    script, hook_log = tmp_path / "hook.py", tmp_path / "hook.log"
    script.write_text(HOOK)
    hooks = {key: [sys.executable, str(script), str(hook_log), "-", "0"] for key in ("on_done", "on_quarantine")}
    config = write_jobs(tmp_path, emulator.base_url, {"contracts": {"ocr": {"format": ["pdf", "txt"]},
                                                                    "hooks": hooks}})
    daemon = daemon_factory(config).start()
    daemon.wait_event("watching")
    job = tmp_path / "contracts"
    drop(job / "inbox" / "a.png", png_bytes(1))
    wait_for(lambda: files(job / "archive") == ["a.png"], 20, what="a.png archived")
    assert files(job / "outbox") == ["a.pdf", "a.txt"]
    assert sorted(t["format"] for t in emulator.tasks()) == ["pdf", "txt"]
    assert emulator.stats()["credits_spent"] == 2

    emulator.add_fault("state", state=-5, format="txt")  # the next txt task fails at the service
    drop(job / "inbox" / "b.png", png_bytes(2))
    wait_for(lambda: "b.png" in files(job / "quarantine"), 20, what="b.png quarantined")
    assert files(job / "outbox") == ["a.pdf", "a.txt", "b.pdf"], "the output that succeeded stays"
    report = json.loads((job / "quarantine" / "b.png.error.json").read_text())
    assert "format txt failed" in report["reason"] and "b.pdf" in report["reason"]
    assert report["detail"]["formats"]["pdf"]["output"] == "b.pdf"
    assert report["detail"]["formats"]["txt"]["failed"]
    pdf_before = (job / "outbox" / "b.pdf").stat()
    assert emulator.stats()["creates"] == 4  # the failed txt task is not billed by the service

    os.rename(job / "quarantine" / "b.png", job / "inbox" / "b.png")  # run it again, by hand
    wait_for(lambda: files(job / "archive") == ["a.png", "b.png"], 20, what="b.png archived after the retry")
    assert daemon.terminate() == 0
    assert files(job / "outbox") == ["a.pdf", "a.txt", "b.pdf", "b.txt"]
    assert (job / "outbox" / "b.pdf").stat().st_mtime_ns == pdf_before.st_mtime_ns, "the pdf was not made again"
    assert emulator.stats()["creates"] == 5, "the retry created (and paid for) the txt alone"
    b_tasks = sorted(t["format"] for t in emulator.tasks() if t["source_name"] == "b.png")
    assert b_tasks == ["pdf", "txt", "txt"]
    assert files(job / "quarantine") == [], "the old report retired"
    kept = [e for e in daemon.events() if e.get("event") == "output_kept"]
    assert [(e["file"], e["format"], e["output"]) for e in kept] == [("b.png", "pdf", "b.pdf")]
    told = [ast.literal_eval(line) for line in hook_log.read_text().splitlines()[0::2]]
    outbox = str((job / "outbox").resolve())
    assert sorted((t["OCRW_EVENT"], t["OCRW_OUTPUTS"]) for t in told) == [
        ("done", f"{outbox}/a.pdf\n{outbox}/a.txt"), ("done", f"{outbox}/b.pdf\n{outbox}/b.txt"),
        ("quarantined", f"{outbox}/b.pdf")], "one hook a file, when its last format ended"
    assert "txt" in next(t for t in told if t["OCRW_EVENT"] == "quarantined")["OCRW_REASON"]


def test_status_metrics_and_retry_know_the_job(
    tmp_path: Path, emulator: Emulator, daemon_factory: Callable[[Path], Daemon]
) -> None:
    """`status --json` breaks the files down by job, /metrics labels them with it, and
    `retry --job` moves one job's failures back into that job's inbox."""
    port = free_port()
    config = write_jobs(tmp_path, emulator.base_url, {"alpha": {}, "beta": {}},
                        metrics={"listen": f"127.0.0.1:{port}"})
    daemon = daemon_factory(config).start()
    daemon.wait_event("watching", count=2)
    drop(tmp_path / "alpha" / "inbox" / "a.png", png_bytes(1))
    drop(tmp_path / "beta" / "inbox" / "b__state_-5__.png", png_bytes(2))
    wait_for(lambda: files(tmp_path / "alpha" / "archive") == ["a.png"]
             and "b__state_-5__.png" in files(tmp_path / "beta" / "quarantine"), 20, what="both ended")
    daemon.wait_event("file_quarantined")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    finished = {(s.labels["job"], s.labels["outcome"]): s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "ocr_watch_files_total"}
    assert finished == {("alpha", "done"): 1, ("alpha", "quarantined"): 0,
                        ("beta", "done"): 0, ("beta", "quarantined"): 1}
    assert daemon.terminate() == 0

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ocr_watch", *args, "--config", str(config)],
                              capture_output=True, text=True, timeout=30)

    status = json.loads(cli("status", "--json").stdout)
    assert status["jobs"]["alpha"]["counts"]["done"] == 1 and status["jobs"]["alpha"]["in_quarantine"] == 0
    assert status["jobs"]["beta"]["counts"]["quarantined"] == 1 and status["jobs"]["beta"]["in_quarantine"] == 1
    assert [(q["job"], q["path"]) for q in status["quarantined"]] == [("beta", "b__state_-5__.png")]
    assert "job beta: 1 quarantined; 1 in quarantine" in cli("status").stdout
    refused = cli("retry", "b__state_-5__.png")
    assert refused.returncode == 2 and "--job" in refused.stderr
    assert cli("retry", "--job", "gamma").returncode == 2
    retried = cli("retry", "--job", "beta", "b__state_-5__.png")
    assert retried.returncode == 0, retried.stderr
    assert files(tmp_path / "beta" / "inbox") == ["b__state_-5__.png"]
    assert files(tmp_path / "alpha" / "inbox") == []
