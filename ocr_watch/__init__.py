"""ocr-watch: a hot folder for the PicWish Document OCR API."""

# Kept equal to pyproject.toml's version: what `ocr-watch --version` falls back to when the
# package runs from a source tree that was never installed (no metadata to read).
__version__ = "0.1.0"
