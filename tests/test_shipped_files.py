"""What the repo ships for users (the example config, the systemd units) matches the code, and
systemd itself finds the units clean (`verify`) and well sandboxed (`security`)."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from ocr_watch.config import load_config

pytestmark = pytest.mark.timeout(10)

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_config_is_valid_and_says_every_default(tmp_path: Path) -> None:
    config = load_config(ROOT / "config.example.yaml", env={"PICWISH_API_KEY": "example-key-123"})
    assert config.api.base_url == "https://techhk.aoscdn.com"
    assert config.api.requests_per_second == 2
    assert config.pool.max_in_flight == 32 and config.poll.timeout_seconds == 120


def test_the_systemd_unit_runs_the_run_command_and_does_not_restart_on_bad_config() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "systemd" / "ocr-watch.service")
    command = shlex.split(unit["Service"]["ExecStart"])
    assert command[1:3] == ["run", "--config"]
    assert unit["Service"]["KillSignal"] == "SIGTERM"
    assert "2" in unit["Service"]["RestartPreventExitStatus"].split()


# --- the systemd units ------------------------------------------------------------------------

UNITS = {"ocr-watch.service": "ocr-watch.service", "ocr-watch@.service": "ocr-watch@scans.service"}
PROGRAM = "/opt/ocr-watch/venv/bin/ocr-watch"  # what the install steps in the header create
MAX_EXPOSURE = 2.0


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(ROOT / "systemd" / name)
    return unit


def _systemd_analyze() -> str:
    """Its path; outside .ci/run (which installs it) a machine without it skips, saying so."""
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("OCR_WATCH_CI"):
            pytest.fail("systemd-analyze is missing although .ci/run should have installed it")
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd; .ci/run installs it)")
    return found


@pytest.mark.parametrize("name", UNITS)
def test_the_units_speak_notify_reload_by_sighup_and_take_the_key_as_a_credential(name: str) -> None:
    service = _unit(name)["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert float(service["WatchdogSec"]) > 0
    assert shlex.split(service["ExecReload"]) == ["/bin/kill", "-HUP", "$MAINPID"]
    assert service["LoadCredential"] == "picwish-api-key:/etc/ocr-watch/picwish-api-key"
    assert service["UMask"] == "0027" and service["User"] == "ocr-watch"
    assert service["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert "ProcSubset" not in service, "hides /proc/stat: prometheus_client then exports no process metrics"
    command = shlex.split(service["ExecStart"])
    assert command[0] == PROGRAM and command[1:3] == ["run", "--config"]


def test_the_template_is_the_unit_with_one_config_state_dir_and_folder_per_instance() -> None:
    single, template = _unit("ocr-watch.service"), _unit("ocr-watch@.service")
    assert shlex.split(template["Service"]["ExecStart"])[-1] == "/etc/ocr-watch/%i.yaml"
    assert template["Service"]["StateDirectory"] == "ocr-watch/%i"
    assert template["Service"]["ReadWritePaths"] == "/srv/scans/%i"
    differing = {(section, key) for section in single.sections() for key in single[section]
                 if single[section][key] != template[section].get(key)}
    assert differing == {("Unit", "Description"), ("Service", "ExecStart"), ("Service", "StateDirectory"),
                         ("Service", "ReadWritePaths")}
    assert set(template["Service"]) == set(single["Service"])


def test_the_example_config_keeps_its_state_in_the_units_state_directory_and_folders_writable() -> None:
    config = load_config(ROOT / "config.example.yaml", env={"PICWISH_API_KEY": "example-key-123"})
    service = _unit("ocr-watch.service")["Service"]
    assert config.state_dir == Path("/var/lib") / service["StateDirectory"]
    writable = [Path(p) for p in service["ReadWritePaths"].split()]
    for folder in (config.folders.inbox, config.folders.outbox, config.folders.quarantine, config.folders.archive):
        assert any(folder.is_relative_to(root) for root in writable), folder


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify_finds_nothing_to_say(name: str, tmp_path: Path) -> None:
    """The shipped unit, byte for byte but for ExecStart's program, which the install creates:
    here a stub in tmp_path, so verify can check it exists and is executable."""
    analyze = _systemd_analyze()
    stub = tmp_path / "ocr-watch"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = (ROOT / "systemd" / name).read_text()
    assert text.count(f"ExecStart={PROGRAM} ") == 1
    (tmp_path / UNITS[name]).write_text(text.replace(f"ExecStart={PROGRAM} ", f"ExecStart={stub} "))
    result = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / UNITS[name])],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_security_scores_the_sandbox_at_most_2(name: str) -> None:
    analyze = _systemd_analyze()
    result = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(ROOT / "systemd" / name)],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found[1]) <= MAX_EXPOSURE, result.stdout
