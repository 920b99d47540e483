"""What the repo ships for users (the example config, the systemd unit) matches the code."""

from __future__ import annotations

import configparser
import shlex
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
