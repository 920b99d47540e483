"""The emulator imports nothing of ours, so it keeps its own copies of the service's rules.

Each copy must say what the client's says, or the tests would pass against a service that
does not exist: a language the client lets through and the emulator refuses, a format one
knows and the other does not, a size limit that differs.
"""

from __future__ import annotations

import pytest

from ocr_watch.config import checks, sections
from ocr_watch.emulator import results as emulator_results
from ocr_watch.emulator import validation as emulator_validation
from ocr_watch.emulator.settings import EmulatorSettings
from ocr_watch.intake.filters import MAX_SOURCE_BYTES

pytestmark = pytest.mark.timeout(10)


def test_the_result_formats_agree() -> None:
    assert tuple(emulator_results.FORMATS) == tuple(sections.FORMATS)


def test_the_languages_agree() -> None:
    assert set(emulator_validation.LANGUAGES) == set(checks.KNOWN_LANGUAGES)
    assert emulator_validation.MAX_LANGUAGES == checks.MAX_LANGUAGES


def test_the_largest_upload_agrees() -> None:
    assert EmulatorSettings().max_upload_bytes == MAX_SOURCE_BYTES
