"""Deterministic result files and source sniffing.

The emulator does no OCR: each result names the SHA-256 and file name of its
source, so an end-to-end test can prove every output belongs to its own input.
Bytes depend only on the inputs (fixed zip timestamps, no dates in the PDF).
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

FORMATS = ("txt", "pdf", "docx", "xlsx", "pptx")

CONTENT_TYPES: dict[str, str] = {
    "txt": "text/plain; charset=utf-8",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}

_ZIP_DATE = (2020, 1, 1, 0, 0, 0)

#: Magic numbers of the source kinds the reference accepts (pdf, images, OOXML, OLE2 Office).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"PK\x03\x04", "ooxml"),
    (b"\xd0\xcf\x11\xe0", "ole2"),
)

#: How many leading bytes of an upload are kept for sniffing.
SNIFF_BYTES = 16


def sniff_kind(head: bytes) -> str | None:
    """Name the source kind from its first bytes, or None if unsupported."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def result_lines(sha256_hex: str, source_name: str, fmt: str) -> list[str]:
    """The text every result format carries."""
    return [
        "ocr-watch emulator result",
        f"source_name: {source_name}",
        f"source_sha256: {sha256_hex}",
        f"format: {fmt}",
    ]


def render_result(sha256_hex: str, source_name: str, fmt: str) -> bytes:
    """Deterministic bytes of the result file in ``fmt`` for the given source."""
    lines = result_lines(sha256_hex, source_name, fmt)
    if fmt == "txt":
        return ("\n".join(lines) + "\n").encode("utf-8")
    if fmt == "pdf":
        return _render_pdf(lines)
    if fmt == "docx":
        return _render_docx(lines)
    if fmt == "xlsx":
        return _render_xlsx(lines)
    if fmt == "pptx":
        return _render_pptx(lines)
    raise ValueError(f"unknown format {fmt!r}")


def _pdf_literal(text: str) -> str:
    """A PDF literal string body: ASCII only (others become '?'), specials escaped."""
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _render_pdf(lines: list[str]) -> bytes:
    """A one-page PDF 1.4 with a correct xref table; full UTF-8 text also in /Subject."""
    ops = ["BT", "/F1 11 Tf", "14 TL", "50 780 Td"]
    for line in lines:
        ops.append(f"({_pdf_literal(line)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii")
    subject = ("\ufeff" + "\n".join(lines)).encode("utf-16-be").hex().upper()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Producer (ocr-watch emulator) /Subject <" + subject.encode("ascii") + b"> >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref_at = out.tell()
    out.write(b"xref\n0 %d\n" % (len(objects) + 1))
    out.write(b"0000000000 65535 f \n")
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref_at)
    return out.getvalue()


def _zip(parts: list[tuple[str, str]]) -> bytes:
    """A deterministic zip (fixed timestamps and attributes) of UTF-8 text parts."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in parts:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 0
            zf.writestr(info, text.encode("utf-8"))
    return buf.getvalue()


_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_REL_OFFICE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"


def _content_types(overrides: dict[str, str]) -> str:
    body = "".join(f'<Override PartName="{p}" ContentType="{t}"/>' for p, t in overrides.items())
    return (
        _XML + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>' + body + "</Types>"
    )


def _rels(targets: list[tuple[str, str]]) -> str:
    body = "".join(
        f'<Relationship Id="rId{i}" Type="{t}" Target="{target}"/>' for i, (t, target) in enumerate(targets, 1)
    )
    namespace = "http://schemas.openxmlformats.org/package/2006/relationships"
    return _XML + f'<Relationships xmlns="{namespace}">' + body + "</Relationships>"


def _render_docx(lines: list[str]) -> bytes:
    paras = "".join(f'<w:p><w:r><w:t xml:space="preserve">{escape(x)}</w:t></w:r></w:p>' for x in lines)
    doc = (
        _XML + '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{paras}</w:body></w:document>"
    )
    return _zip([
        ("[Content_Types].xml", _content_types({
            "/word/document.xml":
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        })),
        ("_rels/.rels", _rels([(_REL_OFFICE, "word/document.xml")])),
        ("word/document.xml", doc),
    ])


def _render_xlsx(lines: list[str]) -> bytes:
    rows = "".join(
        f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t xml:space="preserve">{escape(x)}</t></is></c></row>'
        for i, x in enumerate(lines, 1)
    )
    main_ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel_ns = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    workbook = (
        _XML + f'<workbook xmlns="{main_ns}" xmlns:r="{rel_ns}">'
        '<sheets><sheet name="OCR" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    sheet = _XML + f'<worksheet xmlns="{main_ns}"><sheetData>{rows}</sheetData></worksheet>'
    return _zip([
        ("[Content_Types].xml", _content_types({
            "/xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            "/xl/worksheets/sheet1.xml":
                "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml",
        })),
        ("_rels/.rels", _rels([(_REL_OFFICE, "xl/workbook.xml")])),
        ("xl/workbook.xml", workbook),
        ("xl/_rels/workbook.xml.rels", _rels([(f"{rel_ns}/worksheet", "worksheets/sheet1.xml")])),
        ("xl/worksheets/sheet1.xml", sheet),
    ])


def _render_pptx(lines: list[str]) -> bytes:
    p_ns = "http://schemas.openxmlformats.org/presentationml/2006/main"
    a_ns = "http://schemas.openxmlformats.org/drawingml/2006/main"
    rel_ns = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    paras = "".join(f"<a:p><a:r><a:t>{escape(x)}</a:t></a:r></a:p>" for x in lines)
    presentation = (
        _XML + f'<p:presentation xmlns:p="{p_ns}" xmlns:a="{a_ns}" xmlns:r="{rel_ns}">'
        '<p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst>'
        '<p:sldSz cx="9144000" cy="6858000"/><p:notesSz cx="6858000" cy="9144000"/></p:presentation>'
    )
    slide = (
        _XML + f'<p:sld xmlns:p="{p_ns}" xmlns:a="{a_ns}" xmlns:r="{rel_ns}"><p:cSld><p:spTree>'
        '<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>'
        '<p:sp><p:nvSpPr><p:cNvPr id="2" name="Text"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr>'
        '<p:spPr><a:xfrm><a:off x="457200" y="457200"/><a:ext cx="8229600" cy="5943600"/></a:xfrm>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr>'
        f"<p:txBody><a:bodyPr/><a:lstStyle/>{paras}</p:txBody></p:sp>"
        "</p:spTree></p:cSld></p:sld>"
    )
    return _zip([
        ("[Content_Types].xml", _content_types({
            "/ppt/presentation.xml":
                "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
            "/ppt/slides/slide1.xml": "application/vnd.openxmlformats-officedocument.presentationml.slide+xml",
        })),
        ("_rels/.rels", _rels([(_REL_OFFICE, "ppt/presentation.xml")])),
        ("ppt/presentation.xml", presentation),
        ("ppt/_rels/presentation.xml.rels", _rels([(f"{rel_ns}/slide", "slides/slide1.xml")])),
        ("ppt/slides/slide1.xml", slide),
    ])
