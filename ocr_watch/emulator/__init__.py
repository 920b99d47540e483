"""An emulator of the PicWish Document OCR API, for tests and local runs.

A real HTTP server on loopback with two listeners: the API host
(``POST /api/tasks/document/ocr``, ``GET /api/tasks/document/ocr/{task_id}``,
control routes under ``/_emulator/``) and a separate result host standing for the
object storage that serves pre-signed result URLs. It imports nothing from the
rest of ``ocr_watch``, so a misreading of the protocol cannot sit on both sides.

Modules: ``settings`` (knobs), ``tasks`` (lifecycle and credits), ``ratelimit``
(token buckets, or a strict gateway: ``limiter="gateway"``), ``uplink`` (the upload
bandwidth all connections share), ``faults`` (fault rules and file-name triggers),
``results`` (result bytes, sniffing), ``signing`` (result URLs), ``multipart`` (streaming
upload), ``validation`` (400 rules), ``callbacks`` (callback_url delivery),
``http`` (server and handler plumbing), ``server`` (the routes), ``emulator`` (wiring), ``cli``.

Create checks, in order: X-API-KEY (401), rate limit (429), body parsing (413 as
soon as the file passes ``max_upload_bytes``, then the connection is closed;
fields sent before the file are validated first), validation (400), credits
(402 "insufficient credits", an assumption: the reference leaves it undocumented).
Credits are spent when a task reaches state 1; the balance is checked at create.
``GET /api/customers/package-credits`` (the balance route, seen in public client code) answers
``{"status": 200, "message": "success", "data": {"balance": N}}`` with the credits left, or
``"balance": null`` when credits are unlimited (no ``--credits``): that shape is *assumed*, the
real one is undocumented. It counts in ``credit_queries`` and under the rate limit.
``image_url`` sources are accepted but never fetched: they end in state -3.

Faults (``Emulator.add_fault(kind, route=..., count=N, **params)`` or
``POST /_emulator/faults``) fire on the next ``count`` matches, then are used up:

- ``http_500``: HTTP 500 with envelope; on create no task is made.
- ``http_429``: ``count`` consecutive 429s; param ``retry_after`` (seconds) adds Retry-After.
- ``slow``: param ``delay_s``, then the normal answer (on create the task exists meanwhile).
- ``drop``: status line, headers and half the body, then the socket closes; on create
  the task IS created first (the ambiguous case).
- ``malformed_json``: HTTP 200 with a truncated JSON body; on create the task IS created.
- ``body_500``: HTTP 200 carrying ``{"status":500,...}``; on create no task is made.
- ``state``: param ``state`` in -1,-2,-3,-5,-7,-8; the next ``count`` created tasks end so.
- ``expired_url``: the next ``count`` tasks to complete get an already-expired URL.
- ``broken_download``: the next ``count`` downloads send half the body (full Content-Length), then close.

Routes: ``create``, ``query``, ``download`` or ``any``; ``state``, ``expired_url`` and
``broken_download`` ignore the route. ``malformed_json``/``body_500`` only hit API routes.

Per-file triggers in the uploaded file name:

- ``__state_-7__`` (any negative state): the task ends in that state.
- ``__expired__``: its result URL is already expired.
- ``__brokendl__``: its first download is cut in half.
- ``__seconds_5__`` (decimals allowed, ``__seconds_0.2__``): processing takes exactly that long.

Result URLs: by default a URL's expiry counts from the task's completion and every query
returns the same URL, so re-querying does not revive an expired one. With
``fresh_url_per_query`` (``--fresh-url-per-query``) a query after the first that returned the
URL signs a fresh one, as object storage signing each request would (the real service's
behaviour here is not documented).

Callbacks: on every state entered after creation (2, 3, 4 and the terminal one) the
envelope of the query response is POSTed as JSON to ``callback_url``.
"""

from .emulator import Emulator
from .results import render_result
from .settings import EmulatorSettings

__all__ = ["Emulator", "EmulatorSettings", "render_result"]
