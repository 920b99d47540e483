"""Pre-signed-looking result URLs: ``/r/<task_id>/<name>?Expires=<unix>&Signature=<hex>``.

Models the object-storage URL of the reference: the query string carries the
signature, so a client that rebuilds or trims the URL gets 403, as it would for real.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote


class UrlSigner:
    """HMAC-SHA256 signer for result paths; secret derived from the seed (deterministic)."""

    def __init__(self, seed: int) -> None:
        self._secret = hashlib.sha256(f"ocr-watch-emulator-{seed}".encode()).digest()

    def signature(self, path: str, expires: int) -> str:
        """Hex signature over the path and the expiry."""
        msg = f"{path}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def sign(self, base_url: str, path: str, expires: int) -> str:
        """Full URL for ``path`` (already quoted) valid until ``expires`` (Unix seconds)."""
        return f"{base_url}{path}?Expires={expires}&Signature={self.signature(path, expires)}"

    def check(self, path: str, expires: str | None, signature: str | None, now: float | None = None) -> str | None:
        """None if valid; otherwise a reason (``"bad signature"`` or ``"expired"``)."""
        if not expires or not signature or not expires.isdigit():
            return "bad signature"
        if not hmac.compare_digest(self.signature(path, int(expires)), signature):
            return "bad signature"
        if (time.time() if now is None else now) > int(expires):
            return "expired"
        return None


def result_path(task_id: str, fmt: str) -> str:
    """The quoted path of a task's result object."""
    return f"/r/{quote(task_id)}/{quote(task_id)}.{fmt}"
