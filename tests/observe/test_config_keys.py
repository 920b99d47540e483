"""The two keys issue 17 adds: metrics.listen (off unless set) and account.low_credits_warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocr_watch.config import Config, ConfigError, Listen, load_config

BASE = """\
folders: {inbox: in, outbox: out, quarantine: q}
api: {key: some-key-123}
"""


def _load(tmp_path: Path, extra: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra)
    return load_config(path, env={})


def test_metrics_are_off_and_the_warning_is_at_100_by_default(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.metrics.listen is None
    assert config.account.low_credits_warning == 100


def test_both_keys_are_read(tmp_path: Path) -> None:
    config = _load(tmp_path, "metrics: {listen: '[::1]:9808'}\naccount: {low_credits_warning: 0}\n")
    assert config.metrics.listen == Listen("::1", 9808)
    assert config.account.low_credits_warning == 0


@pytest.mark.parametrize(("extra", "key"), [
    ("metrics: {listen: 9808}\n", "metrics.listen:"),
    ("metrics: {listen: 'localhost:http'}\n", "metrics.listen:"),
    ("account: {low_credits_warning: -1}\n", "account.low_credits_warning:"),
    ("account: {low_credit_warning: 5}\n", "account.low_credit_warning:"),
])
def test_a_bad_value_names_its_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, extra)
    assert any(problem.startswith(key) for problem in info.value.problems), info.value.problems
