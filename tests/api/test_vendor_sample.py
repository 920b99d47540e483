"""The vendor's own Python polling sample runs unmodified (but for URL, key, path) against the emulator.

If the vendor's client works against the emulator, the emulator speaks the protocol the
way real clients expect, which is what makes every other test in this folder meaningful.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import pytest

DOC = pathlib.Path(__file__).resolve().parents[2].parent / "shared/reference/picwish-ocr-api-doc.txt"
SAMPLE_START = "import os\nimport time\nimport requests\n"
SAMPLE_END = 'if __name__ == "__main__":\n    main()\n'
VENDOR_HOST = "https://techsz.aoscdn.com"


def vendor_sample() -> str:
    """The file-upload polling sample, found by its text rather than a line number."""
    if not DOC.is_file():
        pytest.skip(f"vendor doc not found at {DOC} (CI clones shared/ beside the repo)")
    text = DOC.read_text(encoding="utf-8")
    start = text.find(SAMPLE_START)
    while start >= 0:
        end = text.find(SAMPLE_END, start)
        block = text[start : end + len(SAMPLE_END)]
        if end > 0 and "files = {'image_file':" in block and "def polling_task_result" in block:
            return block
        start = text.find(SAMPLE_START, start + 1)
    pytest.fail("the vendor's image_file polling sample is not in the doc any more")


def replace_once(text: str, old: str, new: str, count: int) -> str:
    """Replace and insist the sample still has exactly the lines we expect to change."""
    assert text.count(old) == count, f"expected {count} x {old!r} in the vendor sample"
    return text.replace(old, new)


def test_vendor_sample_succeeds(emulator: Any, tmp_path: pathlib.Path, emu_key: str) -> None:
    """Exit 0, `Result(successful)` printed, exactly one create counted by the emulator."""
    image = tmp_path / "sample.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 2048)
    sample = vendor_sample()
    sample = replace_once(sample, VENDOR_HOST, emulator.base_url.rstrip("/"), 2)
    sample = replace_once(sample, "API_KEY = 'YOUR_API_KEY'", f"API_KEY = {emu_key!r}", 1)
    sample = replace_once(sample, "IMAGE_FILE_PATH = 'YOUR_IMAGE_FILE_PATH'", f"IMAGE_FILE_PATH = {str(image)!r}", 1)
    script = tmp_path / "vendor_sample.py"
    script.write_text(sample, encoding="utf-8")

    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert "Result(successful)" in done.stdout, done.stdout
    assert emulator.stats()["creates"] == 1
