"""reload.py and config/diff.py: what a reload applies, what it leaves for a restart, and that a
bad file changes nothing and says what check-config would say."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from ocr_watch import config as cfgmod
from ocr_watch.notify import Notifier
from ocr_watch.reload import Reloader, plan_reload
from ocr_watch.testing import NotifyReceiver, restore_logging

pytestmark = pytest.mark.timeout(30)

BASE: dict[str, Any] = {
    "folders": {"inbox": "in", "outbox": "out", "quarantine": "q"},
    "api": {"base_url": "http://127.0.0.1:9", "key": "key-for-reload-tests", "requests_per_second": 2},
}


def write(path: Path, **changes: Any) -> Path:
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for key, value in changes.items():
        section, _, name = key.rpartition("__")
        if section:
            data.setdefault(section, {})[name] = value
        else:
            data[name] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def running(tmp_path: Path) -> cfgmod.Config:
    config = cfgmod.load_config(write(tmp_path / "c.yaml"), env={})
    cfgmod.prepare_folders(config)
    return config


def test_changed_keys_by_dotted_name_in_declared_order(running: cfgmod.Config, tmp_path: Path) -> None:
    other = cfgmod.load_config(write(tmp_path / "c.yaml", ocr__format="docx", folders__outbox="out2",
                                     api__key="another-key-entirely", log_level="debug"), env={})
    assert cfgmod.changed_keys(running, other) == ["folders.outbox", "ocr.format", "api.key", "log_level"]
    assert cfgmod.changed_keys(running, running) == []


def test_live_keys_are_applied_and_the_others_kept_for_a_restart(running: cfgmod.Config, tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", api__requests_per_second=5, pool__max_in_flight=3, ocr__format="pdf",
          ocr__password="new-pass", on_success="keep", log_level="debug",
          watch__settle_seconds=0.5, watch__rescan_seconds=7, watch__poll_interval_seconds=2,
          folders__outbox="elsewhere", state_dir="st2", callback__listen="127.0.0.1:9999",
          api__base_url="http://127.0.0.1:10", poll__timeout_seconds=30)
    plan = plan_reload(running)
    assert sorted(plan.applied) == sorted([
        "api.requests_per_second", "pool.max_in_flight", "ocr.format", "ocr.password", "on_success", "log_level",
        "watch.settle_seconds", "watch.rescan_seconds", "watch.poll_interval_seconds"])
    assert sorted(plan.needs_restart) == sorted(
        ["folders.outbox", "state_dir", "callback.listen", "api.base_url", "poll.timeout_seconds"])
    new = plan.config
    assert (new.api.requests_per_second, new.pool.max_in_flight, new.ocr.format, new.on_success,
            new.log_level, new.watch.rescan_seconds) == (5, 3, "pdf", "keep", "debug", 7)
    assert new.ocr.password is not None and new.ocr.password.reveal() == "new-pass"
    # What needs a restart is what runs now.
    assert (new.folders.outbox, new.state_dir, new.callback.listen, new.api.base_url, new.poll.timeout_seconds) == (
        running.folders.outbox, running.state_dir, running.callback.listen, running.api.base_url,
        running.poll.timeout_seconds)
    assert not (tmp_path / "elsewhere").exists()


def test_a_bad_file_raises_the_problems_check_config_prints(running: cfgmod.Config, tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", pool__max_in_flight="eight", ocr__fromat="pdf")
    with pytest.raises(cfgmod.ConfigError) as reload_error:
        plan_reload(running)
    with pytest.raises(cfgmod.ConfigError) as load_error:
        cfgmod.load_config(tmp_path / "c.yaml", env={})
    assert reload_error.value.problems == load_error.value.problems
    assert any(p.startswith("pool.max_in_flight:") for p in reload_error.value.problems)
    assert any(p.startswith("ocr.fromat: unknown key; did you mean 'format'") for p in reload_error.value.problems)


class TestReloader:
    def run_reload(self, running: cfgmod.Config) -> tuple[list[Any], list[str], list[MutableMapping[str, Any]]]:
        receiver = NotifyReceiver(f"@ocr-watch-test-{secrets.token_hex(6)}")
        applied: list[Any] = []

        async def apply(config: cfgmod.Config, keys: list[str]) -> None:
            applied.append((config, keys))

        async def scenario() -> None:
            reloader = Reloader(running, apply, Notifier({"NOTIFY_SOCKET": receiver.address}))
            await reloader.reload()

        try:
            with structlog.testing.capture_logs() as logged:
                asyncio.run(scenario())
            receiver.wait("READY")
            lines = [data for _, data in receiver.datagrams]
        finally:
            receiver.close()
        return applied, lines, logged

    def test_a_broken_file_changes_nothing_logs_the_problems_and_says_ready_again(
            self, running: cfgmod.Config, tmp_path: Path) -> None:
        (tmp_path / "c.yaml").write_text("folders: [unclosed\n")
        applied, notified, logged = self.run_reload(running)
        assert applied == []
        (refused,) = [e for e in logged if e["event"] == "config_reload_refused"]
        assert refused["log_level"] == "error" and refused["problems"][0].startswith(f"{tmp_path / 'c.yaml'}: YAML")
        assert notified[0].startswith("RELOADING=1\nMONOTONIC_USEC=") and notified[-1] == "READY=1"

    def test_a_good_file_is_applied_and_a_restart_key_named(self, running: cfgmod.Config, tmp_path: Path) -> None:
        write(tmp_path / "c.yaml", api__requests_per_second=7, folders__quarantine="q2")
        applied, notified, logged = self.run_reload(running)
        ((config, keys),) = applied
        assert keys == ["api.requests_per_second"] and config.api.requests_per_second == 7
        assert config.folders.quarantine == running.folders.quarantine
        (restart,) = [e for e in logged if e["event"] == "config_reload_needs_restart"]
        assert restart["keys"] == ["folders.quarantine"] and restart["log_level"] == "warning"
        assert [e["event"] for e in logged][-1] == "config_reloaded"
        assert notified[-1] == "READY=1"


def test_a_sighup_while_starting_is_a_reload_once_ready_not_a_death(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`ocr-watch run` in this process; SIGHUP arrives while it starts (before the reloader
    exists): it does not kill it, and the reload happens once it is ready."""
    import os
    import signal
    import threading

    from ocr_watch import cli
    from ocr_watch.emulator import Emulator, EmulatorSettings
    from ocr_watch.pool.memory import PlannerMemory
    from ocr_watch.testing import EMU_KEY, wait_for

    load = PlannerMemory.load

    def load_then_hup(self: PlannerMemory) -> None:
        os.kill(os.getpid(), signal.SIGHUP)  # while starting: the journal open, nothing resumed yet
        load(self)

    monkeypatch.setattr(PlannerMemory, "load", load_then_hup)
    (tmp_path / "inbox").mkdir()
    config = tmp_path / "config.yaml"
    with Emulator(EmulatorSettings(api_keys=(EMU_KEY,))) as emulator:
        config.write_text(yaml.safe_dump({
            "folders": {"inbox": "inbox", "outbox": "outbox", "quarantine": "quarantine"},
            "api": {"base_url": emulator.base_url, "key": EMU_KEY}, "watch": {"rescan_seconds": 0}}))
        seen: list[str] = []

        def reloaded() -> bool:
            seen.append(capsys.readouterr().err)
            return '"config_reloaded"' in "".join(seen)

        def stop_when_reloaded() -> None:
            wait_for(reloaded, 30, what="the reload")
            os.kill(os.getpid(), signal.SIGTERM)

        stopper = threading.Thread(target=stop_when_reloaded)
        stopper.start()
        try:
            code = cli.main(["run", "--config", str(config)])
        finally:
            stopper.join(30)
            restore_logging()
    err = "".join(seen) + capsys.readouterr().err
    assert code == 0
    assert err.index('"watching"') < err.index('"config_reloaded"') < err.index('"stopped"')


class TestJobs:
    """With `jobs:`, a job's keys are named with its name."""

    def write_jobs(self, path: Path, jobs: dict[str, Any]) -> Path:
        path.write_text(yaml.safe_dump({"api": BASE["api"], "jobs": jobs}))
        return path

    def job(self, name: str, **ocr: Any) -> dict[str, Any]:
        return {"folders": {"inbox": f"{name}-in", "outbox": f"{name}-out", "quarantine": f"{name}-q"},
                "ocr": ocr or {"format": "txt"}}

    @pytest.fixture
    def running_job(self, tmp_path: Path) -> cfgmod.Config:
        config = cfgmod.load_config(self.write_jobs(tmp_path / "j.yaml", {"scans": self.job("scans")}), env={})
        cfgmod.prepare_folders(config)
        return config

    def test_a_jobs_options_are_applied_under_its_name(self, running_job: cfgmod.Config, tmp_path: Path) -> None:
        self.write_jobs(tmp_path / "j.yaml", {"scans": self.job("scans", format="pdf", language="German")})
        plan = plan_reload(running_job)
        assert plan.applied == ["jobs.scans.ocr.format", "jobs.scans.ocr.language"] and plan.needs_restart == []
        assert (plan.config.ocr.format, plan.config.ocr.language) == ("pdf", "German")

    def test_another_job_needs_a_restart_and_is_not_taken(self, running_job: cfgmod.Config, tmp_path: Path) -> None:
        self.write_jobs(tmp_path / "j.yaml", {"scans": self.job("scans", format="docx"),
                                              "more": self.job("more")})
        plan = plan_reload(running_job)
        assert plan.applied == [] and plan.needs_restart == ["jobs"]
        assert [job.name for job in plan.config.jobs] == ["scans"] and plan.config.ocr.format == "txt"

    def test_several_formats_are_applied_like_one(self, running_job: cfgmod.Config, tmp_path: Path) -> None:
        """Several formats are served (issue 18): the next files get a row per format."""
        self.write_jobs(tmp_path / "j.yaml", {"scans": self.job("scans", format=["txt", "pdf"])})
        plan = plan_reload(running_job)
        assert plan.applied == ["jobs.scans.ocr.format"] and plan.needs_restart == []
        assert plan.config.jobs[0].ocr.formats == ("txt", "pdf")
