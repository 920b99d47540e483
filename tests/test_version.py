"""`ocr-watch --version`: the installed distribution's version, else the package's own."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from importlib import metadata

import pytest

import ocr_watch
from ocr_watch import version as version_module

pytestmark = pytest.mark.timeout(30)


def test_version_prints_the_installed_version() -> None:
    result = subprocess.run([sys.executable, "-m", "ocr_watch", "--version"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0
    assert result.stdout == f"ocr-watch {metadata.version('ocr-watch')}\n"


def test_without_metadata_the_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert version_module.version() == ocr_watch.__version__


def test_the_package_version_is_the_projects() -> None:
    """The fallback says what pyproject.toml says (a release bumps both)."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert ocr_watch.__version__ == project["version"]
