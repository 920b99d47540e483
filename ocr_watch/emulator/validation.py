"""Validation of create-task fields, as listed in the protocol reference.

Pure functions over the parsed form, so each 400 rule is testable without HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .multipart import ParsedForm, UploadedFile
from .results import FORMATS

LANGUAGES = frozenset({
    "Digits", "English", "ChinesePRC", "ChineseTaiwan", "French", "German", "Japanese", "Portuguese",
    "Spanish", "Italian", "Bulgarian", "Croatian", "Czech", "Danish", "Dutch", "Finnish", "Greek",
    "Hungarian", "Korean", "Norwegian", "Polish", "Russian", "Slovenian", "Swedish", "Turkish",
})
DEFAULT_LANGUAGE = "ChinesePRC,English,Digits"
MAX_LANGUAGES = 10
MAX_PASSWORD = 32


class ValidationError(ValueError):
    """A 400: the message is what the envelope says."""


@dataclass(frozen=True)
class CreateRequest:
    """A create request that passed validation."""

    file: UploadedFile | None
    image_url: str | None
    fmt: str
    languages: tuple[str, ...]
    callback_url: str | None
    password: str | None = None


def check_fields(form: ParsedForm) -> None:
    """Rules that do not need the source: format, language, password, callback_url."""
    fmt = form.first("format")
    if fmt is not None and fmt not in FORMATS:
        raise ValidationError(f"invalid format: must be one of {', '.join(FORMATS)}")
    language = form.first("language")
    if language is not None and language != "":
        names = [x.strip() for x in language.split(",")]
        if len(names) > MAX_LANGUAGES:
            raise ValidationError(f"too many languages: at most {MAX_LANGUAGES}")
        unknown = [x for x in names if x not in LANGUAGES]
        if unknown:
            raise ValidationError(f"unknown language: {unknown[0]}")
    password = form.first("password")
    if password is not None and len(password) > MAX_PASSWORD:
        raise ValidationError(f"password too long: at most {MAX_PASSWORD} characters")
    callback = form.first("callback_url")
    if callback:
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError("invalid callback_url")


def validate_create(form: ParsedForm) -> CreateRequest:
    """All create rules; raises ``ValidationError`` with the reason."""
    files = [f for f in form.files if f.field_name == "image_file"]
    urls = form.fields.get("image_url", [])
    if len(files) + len(urls) == 0:
        raise ValidationError("image_file or image_url is required")
    if len(files) + len(urls) > 1:
        raise ValidationError("exactly one of image_file and image_url is allowed")
    check_fields(form)
    image_url = urls[0] if urls else None
    if image_url is not None:
        parts = urlsplit(image_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError("invalid image_url")
    language = form.first("language") or DEFAULT_LANGUAGE
    return CreateRequest(
        file=files[0] if files else None,
        image_url=image_url,
        fmt=form.first("format") or "txt",
        languages=tuple(x.strip() for x in language.split(",")),
        callback_url=form.first("callback_url") or None,
        password=form.first("password") or None,
    )
