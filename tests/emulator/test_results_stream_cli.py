"""Result rendering, result downloads per format, the streaming upload, and the CLI."""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ocr_watch.emulator import Emulator, render_result
from ocr_watch.emulator.results import sniff_kind

CREATE = "/api/tasks/document/ocr"
SHA = hashlib.sha256(b"source").hexdigest()
MAIN_PART = {"docx": "word/document.xml", "xlsx": "xl/worksheets/sheet1.xml", "pptx": "ppt/slides/slide1.xml"}


def test_txt_names_source() -> None:
    text = render_result(SHA, "scan ü.pdf", "txt").decode("utf-8")
    assert f"source_sha256: {SHA}" in text.splitlines()
    assert "source_name: scan ü.pdf" in text.splitlines()


def test_pdf_is_valid_with_correct_xref() -> None:
    pdf = render_result(SHA, "a (1).png", "pdf")
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    assert SHA.encode() in pdf
    startxref = int(re.search(rb"startxref\n(\d+)\n", pdf).group(1))  # type: ignore[union-attr]
    assert pdf[startxref:].startswith(b"xref")
    offsets = [int(x) for x in re.findall(rb"(\d{10}) 00000 n ", pdf)]
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(b"%d 0 obj" % number)


@pytest.mark.parametrize("fmt", ["docx", "xlsx", "pptx"])
def test_ooxml_is_a_valid_zip_with_the_text(fmt: str) -> None:
    data = render_result(SHA, "a&b <c>.png", fmt)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names[0] == "[Content_Types].xml" and "_rels/.rels" in names
        main = zf.read(MAIN_PART[fmt]).decode()
        assert SHA in main and "a&amp;b &lt;c&gt;.png" in main
        assert MAIN_PART[fmt] in zf.read("[Content_Types].xml").decode()


@pytest.mark.parametrize("fmt", ["txt", "pdf", "docx", "xlsx", "pptx"])
def test_render_is_deterministic_and_input_specific(fmt: str) -> None:
    assert render_result(SHA, "a.png", fmt) == render_result(SHA, "a.png", fmt)
    assert render_result(SHA, "a.png", fmt) != render_result(SHA, "b.png", fmt)
    other = hashlib.sha256(b"other").hexdigest()
    assert render_result(SHA, "a.png", fmt) != render_result(other, "a.png", fmt)


def test_sniff() -> None:
    assert sniff_kind(b"%PDF-1.7") == "pdf" and sniff_kind(b"PK\x03\x04") == "ooxml"
    assert sniff_kind(b"hello") is None and sniff_kind(b"") is None


@pytest.mark.parametrize("fmt", ["txt", "pdf", "docx", "xlsx", "pptx"])
def test_download_matches_render(emulator: Emulator, wait_for: Any, fmt: str) -> None:
    content = b"%PDF-1.4 " + fmt.encode()
    with httpx.Client(base_url=emulator.base_url, headers={"X-API-KEY": "emu-key"}) as c:
        task_id = c.post(CREATE, files={"image_file": ("in.pdf", content)}, data={"format": fmt}).json()["data"][
            "task_id"]
        url = wait_for(lambda: c.get(f"{CREATE}/{task_id}").json()["data"].get("file"), 10, what="file")
    r = httpx.get(url)
    assert r.status_code == 200
    assert r.content == render_result(hashlib.sha256(content).hexdigest(), "in.pdf", fmt)
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["content-type"].split(";")[0] in ("text/plain", "application/pdf") or "openxml" in r.headers[
        "content-type"]
    output_size = httpx.get(f"{emulator.base_url}{CREATE}/{task_id}",
                            headers={"X-API-KEY": "emu-key"}).json()["data"]["output_size"]
    assert output_size == len(r.content)


def test_large_upload_is_streamed(emulator: Emulator) -> None:
    """50 MB in, the emulator's allocations stay small and the hash is right."""
    size = 50 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    boundary = "streamboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image_file\"; filename=\"big.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    first = b"%PDF" + block[4:]
    digest = hashlib.sha256(first)
    for _ in range(size // len(block) - 1):
        digest.update(block)

    def body() -> Iterator[bytes]:
        yield head
        yield first
        for _ in range(size // len(block) - 1):
            yield block
        yield tail

    length = len(head) + size + len(tail)
    tracemalloc.start()
    try:
        r = httpx.post(f"{emulator.base_url}{CREATE}", content=body(), timeout=60, headers={
            "X-API-KEY": "emu-key", "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(length)})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 200, r.text
    (task,) = emulator.tasks()
    assert task["size"] == size and task["sha256"] == digest.hexdigest()
    assert peak < 8 * 1024 * 1024, f"peak traced allocation {peak} bytes"


def test_cli_prints_url_serves_and_exits_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocr_watch.emulator", "--port", "0", "--key", "cli-key", "--processing-seconds", "0.1",
         "--rps", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        api = proc.stdout.readline().strip()
        result = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", api), api
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", result) and result != api
        r = httpx.post(f"{api}{CREATE}", headers={"X-API-KEY": "cli-key"},
                       files={"image_file": ("a.png", b"\x89PNG\r\n\x1a\n")})
        assert r.status_code == 200
        assert httpx.get(f"{api}/_emulator/stats").json()["creates"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
