"""Command line for a standalone emulator: ``python -m ocr_watch.emulator`` or ``ocr-watch emulator``.

Prints the API base URL as the first stdout line (so a script can read it), the
result base URL as the second, then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .emulator import Emulator
from .ratelimit import LIMITERS
from .settings import EmulatorSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator options to ``parser``."""
    d = EmulatorSettings()
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="API port (0 = any free port)")
    parser.add_argument("--result-port", type=int, default=0, help="result host port (0 = any free port)")
    parser.add_argument("--key", action="append", default=None, help="accepted X-API-KEY (repeatable; default emu-key)")
    parser.add_argument("--rps", type=float, default=d.requests_per_second,
                        help="requests per second per key (0 = unlimited)")
    parser.add_argument("--burst", type=float, default=None, help="token-bucket capacity (default max(1, rps))")
    parser.add_argument("--limiter", choices=LIMITERS, default=d.limiter,
                        help="bucket: token bucket with --burst; gateway: one request per 1/rps per key, "
                             "measured on header arrival, no burst (nginx limit_req)")
    parser.add_argument("--processing-seconds", type=float, default=d.processing_seconds, help="fixed processing time")
    parser.add_argument("--per-mb", type=float, default=d.processing_seconds_per_mb,
                        help="extra processing seconds per MB")
    parser.add_argument("--jitter", type=float, default=d.processing_jitter, help="processing time +- fraction")
    parser.add_argument("--ttl", type=float, default=d.result_ttl_seconds, help="result URL validity, seconds")
    parser.add_argument("--retention", type=float, default=d.task_retention_seconds,
                        help="seconds a finished task is kept")
    parser.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / (1024 * 1024),
                        help="largest accepted upload, MB")
    parser.add_argument("--credits", type=int, default=None, help="credit balance (default unlimited)")
    parser.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on rate-limit 429s")
    parser.add_argument("--seed", type=int, default=0, help="seed of the jitter RNG and URL signing")
    parser.add_argument("--fresh-url-per-query", action="store_true",
                        help="sign result URLs when issued: a query after the first gives a fresh URL")
    parser.add_argument("--upload-bps", type=float, default=d.upload_bytes_per_second,
                        help="upload bandwidth in bytes/s shared by all connections (0 = unlimited)")


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    """Build settings from parsed options."""
    return EmulatorSettings(
        api_keys=tuple(args.key or ["emu-key"]),
        requests_per_second=args.rps,
        burst=args.burst,
        limiter=args.limiter,
        processing_seconds=args.processing_seconds,
        processing_seconds_per_mb=args.per_mb,
        processing_jitter=args.jitter,
        result_ttl_seconds=args.ttl,
        task_retention_seconds=args.retention,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        credits=args.credits,
        retry_after_seconds=args.retry_after,
        seed=args.seed,
        fresh_url_per_query=args.fresh_url_per_query,
        upload_bytes_per_second=args.upload_bps,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; return 0."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    emu = Emulator(settings_from_args(args), host=args.host, port=args.port, result_port=args.result_port)
    try:
        emu.start()
        print(emu.base_url, flush=True)
        print(emu.result_base_url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ocr_watch.emulator``."""
    parser = argparse.ArgumentParser(prog="python -m ocr_watch.emulator",
                                     description="PicWish Document OCR API emulator on loopback")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
