"""`ocr-watch demo`: the whole product in one command, with no key and no network.

The emulator serves on loopback in this process (its listeners are threads), and the daemon
runs as a child, `ocr-watch run`, on a folder made for it (inbox, outbox, quarantine, archive
and a generated, commented config pointing at the emulator with a demo key). A child, not the
daemon in this process: it is then exactly what `run` is, with its locks, exit codes and log,
and this module imports nothing of ours but the emulator. The child gets its own session, so
Ctrl-C reaches only this process, which stops the daemon (SIGTERM, as systemd does) and then
the emulator: one signal each, in that order, nothing left running.

A demo folder is used by one demo at a time (a lock file in it): the config is rewritten at
each start with the new emulator's port, which must not happen under a daemon still reading it.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from ocr_watch.emulator import Emulator, EmulatorSettings

__all__ = ["add_arguments", "run"]

DEMO_KEY = "demo-key"
DEFAULT_DIR = Path("ocr-watch-demo")
FOLDERS = ("inbox", "outbox", "quarantine", "archive")
LOCK_FILE = ".demo.lock"
EXIT_BUSY = 75  # as `run`: another one holds this folder
STOP_WAIT_S = 60.0  # the daemon finishes what is under way (up to 20 s) before it exits

CONFIG = """\
# Written by `ocr-watch demo` at each start (the emulator's port changes): edits are lost.
# It is a normal ocr-watch config; config.example.yaml in the project lists every key.
# Relative paths are relative to this file.

folders:
  inbox: inbox                # drop files here (subfolders are mirrored)
  outbox: outbox              # converted files appear here
  quarantine: quarantine      # failures, each with <name>.error.json saying why
  archive: archive            # sources, once their result is in the outbox
on_success: archive

api:
  # The built-in emulator of the PicWish API on loopback, started by `ocr-watch demo`; it
  # does not really read text. For the real service: https://techhk.aoscdn.com and your key.
  base_url: {base_url}
  key: {key}                  # the only key the demo's emulator accepts
  requests_per_second: 2      # the quota of a real plan, which the emulator enforces too

ocr:
  format: txt                 # txt | pdf | docx | xlsx | pptx

log_level: info
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser``."""
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"the demo's folder, created if missing (default ./{DEFAULT_DIR})")


def run(args: argparse.Namespace) -> int:
    """Serve the demo until SIGINT, SIGTERM or SIGHUP; 0 when both stopped cleanly."""
    root = args.dir.resolve()
    try:
        for name in FOLDERS:
            (root / name).mkdir(parents=True, exist_ok=True)
        lock = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        print(f"ocr-watch demo: cannot use {root}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            print(f"ocr-watch demo: another demo is running on {root}; stop it first, or give --dir "
                  "another folder", file=sys.stderr)
            return EXIT_BUSY
        return _serve(root)
    finally:
        os.close(lock)  # drops the lock


def _serve(root: Path) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGHUP too: a closed terminal must not leave the daemon, in its own session, running alone.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    emulator = Emulator(EmulatorSettings(api_keys=(DEMO_KEY,), processing_seconds=2.0))
    daemon: subprocess.Popen[bytes] | None = None
    try:
        emulator.start()
        config = root / "config.yaml"
        config.write_text(CONFIG.format(base_url=emulator.base_url, key=DEMO_KEY), encoding="utf-8")
        # Its own session: a terminal's Ctrl-C reaches this process only, which passes it on once.
        daemon = subprocess.Popen([sys.executable, "-m", "ocr_watch", "run", "--config", str(config)],
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        _say_where(root, emulator.base_url)
        while not stop.is_set():
            try:
                code = daemon.wait(0.2)
            except subprocess.TimeoutExpired:
                continue
            print(f"ocr-watch demo: the daemon stopped by itself (exit {code}); see its lines above",
                  file=sys.stderr)
            return code or 1
        return _stop(daemon)
    finally:
        if daemon is not None and daemon.poll() is None:  # an error above: leave nothing running
            daemon.kill()
            daemon.wait()
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(daemon: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as systemd stops it; the daemon's exit code (SIGKILL past the wait: 1)."""
    print("ocr-watch demo: stopping (the daemon finishes what is under way first)", file=sys.stderr, flush=True)
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        return 1
    # Ended by the signal itself: stopped while starting, before it handles SIGTERM, so before
    # it took any file (and a start cut short anywhere is resumed from the journal next time).
    return 0 if code == -signal.SIGTERM else code


def _say_where(root: Path, base_url: str) -> None:
    print(f"""\
ocr-watch demo: the daemon watches {root}, against a built-in emulator of the PicWish API
at {base_url} (loopback only: no key, nothing leaves this machine).
The emulator does not really read text: each result only names the file it was given and
its SHA-256. With a real key and the real service, the same files give their text.

  Drop files (pdf, png, jpg, docx, ...) into:  {root / "inbox"}
  Results appear in:                           {root / "outbox"}
  Sources move after success to:               {root / "archive"}
  Failures, with a .error.json saying why:     {root / "quarantine"}
  The configuration it runs with:              {root / "config.yaml"}

Ctrl-C stops both.
""", flush=True)
