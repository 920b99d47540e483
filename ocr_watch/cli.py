"""`ocr-watch`: parse, configure logging, build, run. Exit codes are part of the contract.

    0  success (run: stopped cleanly by SIGTERM/SIGINT; once: every file succeeded)
    1  once: at least one file went to quarantine
    2  bad configuration or usage (one line per problem, naming the key), or a journal that
       cannot be trusted: lost, emptied, replaced, corrupt or not writable (one line naming
       the file and the remedy)
    3  once: the account was refused (bad key, no credits); files were left in the inbox
   70  an internal error (logged, with the key redacted), e.g. the inbox watcher's thread died
       (`watcher_died`): systemd's Restart=on-failure starts it again
   75  run/once: another ocr-watch holds this state_dir or inbox (its pid is named); not started.
       Temporary by design: systemd's Restart=on-failure retries it, so a restart that overlaps
       the old process's exit is not fatal. once: stopped by --timeout or a signal with files
       unfinished (resumable: every task is in the journal)

A refusal to start is one line on stderr per problem: plain words on a terminal, a JSON event
(`config_error`, `already_running`, `journal_refused`) otherwise, like every other line there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from ocr_watch import config as cfgmod
from ocr_watch import logs, runlock
from ocr_watch.journal import JournalError
from ocr_watch.progress import ProgressLine
from ocr_watch.statusline import StatusLine
from ocr_watch.version import version

__all__ = ["main"]

EXIT_CONFIG = 2
EXIT_INTERNAL = 70
EXIT_BUSY = 75  # EX_TEMPFAIL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocr-watch", description="A hot folder for the PicWish Document OCR API.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "watch the inbox and process files until stopped (what systemd runs)"),
        ("once", "process what is in the inbox now, wait for every file, then exit"),
        ("check-config", "validate the configuration and print it with the key masked"),
        ("status", "show what the daemon is doing (running or not; never disturbs it)"),
        ("retry", "move quarantined files back into the inbox, to be processed again"),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", "-c", required=True, type=Path, help="the YAML configuration file")
        if name == "status":
            cmd.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "retry":
            cmd.add_argument("paths", nargs="*", metavar="PATH",
                             help="quarantined files, relative to the quarantine folder (default: all)")
            cmd.add_argument("--job", metavar="NAME", default=None,
                             help="the job whose quarantine PATHs are in (default: the only one; without "
                                  "PATHs: every job's)")
        if name == "once":
            cmd.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                             help="stop after this long as SIGTERM does (every task recorded, resumable) "
                                  "and exit 75 if files are unfinished; default: no limit")
    from ocr_watch.emulator.cli import add_arguments as emulator_arguments

    emulator = sub.add_parser("emulator", help="serve a local emulator of the PicWish OCR API",
                              description="Serve a local emulator of the PicWish OCR API on loopback.")
    emulator_arguments(emulator)
    from ocr_watch.demo import add_arguments as demo_arguments

    demo = sub.add_parser("demo", help="try it with no key and no network: the emulator and the daemon on a folder",
                          description="Start the built-in emulator on loopback and the daemon on a demo folder, "
                                      "until Ctrl-C.")
    demo_arguments(demo)
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds above 0: {text!r}")
    return value


def _load(path: Path, *, create_folders: bool) -> cfgmod.Config | None:
    try:
        config = cfgmod.load_config(path)
        if create_folders:
            cfgmod.prepare_folders(config)
    except cfgmod.ConfigError as exc:
        _print_problems(exc)
        return None
    return config


def _check_config(config: cfgmod.Config) -> int:
    """Print the effective configuration and the folders `run` would create; change nothing."""
    try:
        missing = cfgmod.plan_folders(config)
    except cfgmod.ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    print(cfgmod.describe(config), end="")
    for key, folder in missing:
        print(f"# run would create {key}: {folder}")
    return 0


def _print_problems(exc: cfgmod.ConfigError) -> None:
    for problem in exc.problems:
        _refuse("config_error", f"config error: {problem}")


def _refuse(event: str, message: str) -> None:
    """One line on stderr for a refusal to start: plain words on a terminal, a JSON event
    otherwise (journald, a pipe), like every other line the daemon writes there. Written
    directly: logging may not be configured yet, and none of these messages holds a secret."""
    if sys.stderr.isatty():
        print(f"ocr-watch: {message}", file=sys.stderr)
        return
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    prefix = logs.journal_prefix("error") if logs.stderr_is_journal() else ""
    print(prefix + json.dumps({"event": event, "level": "error", "message": message, "timestamp": stamp}),
          file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "emulator":
        from ocr_watch.emulator.cli import run as run_emulator

        return run_emulator(args)
    if args.command == "demo":
        from ocr_watch.demo import run as run_demo

        return run_demo(args)
    # check-config, status and retry create no folder: only run and once do.
    config = _load(args.config, create_folders=args.command in ("run", "once"))
    if config is None:
        return EXIT_CONFIG
    if args.command == "check-config":
        return _check_config(config)
    if args.command in ("status", "retry"):
        from ocr_watch.admin.commands import run_admin

        return run_admin(args.command, config, args)
    from ocr_watch import daemon

    out = logs.configure(config.log_level, secrets=daemon.secrets(config))
    # Before the journal is opened: one daemon per state_dir and per inbox.
    try:
        lock = runlock.acquire(config.state_dir, config.jobs[0].folders.inbox, others={
            f"{job.prefix}folders.inbox": job.folders.inbox for job in config.jobs[1:]})
    except runlock.Busy as exc:
        _refuse("already_running", f"{exc}; not starting")
        return EXIT_BUSY
    except cfgmod.ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    except OSError:
        structlog.get_logger("ocr_watch").exception("internal_error")
        return EXIT_INTERNAL
    with lock:
        return _serve(args.command == "once", config, getattr(args, "timeout", None), out)


def _serve(once: bool, config: cfgmod.Config, timeout_s: float | None = None,
           out: StatusLine | None = None) -> int:
    """Run the daemon, the locks held; the exit code. ``out``: where log lines go, the progress
    bar drawn below them when it is a terminal."""
    try:
        runlock.claim_state_dir(config.state_dir, config.jobs[0].folders.inbox,
                                others=tuple(job.folders.inbox for job in config.jobs[1:]))
    except cfgmod.ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    if config.state_dir_legacy:
        structlog.get_logger("ocr_watch").info(
            "state_dir_old_default", state_dir=str(config.state_dir),
            hint=f"a journal at the old default is kept; say 'state_dir: {config.state_dir}' in the "
                 "configuration to make that explicit (the default is now a folder per inbox inside it)")
    from ocr_watch.daemon import serve

    progress = ProgressLine(out) if once and out is not None and out.isatty() else None
    try:
        outcome = asyncio.run(serve(config, once=once, on_progress=progress.update if progress else None,
                                    timeout_s=timeout_s))
    except cfgmod.ConfigError as exc:  # found only when starting, e.g. callback.listen is taken
        _print_problems(exc)
        return EXIT_CONFIG
    except JournalError as exc:
        _refuse("journal_refused", str(exc))
        return EXIT_CONFIG
    except Exception:
        structlog.get_logger("ocr_watch").exception("internal_error")
        return EXIT_INTERNAL
    finally:
        if progress:
            progress.close()
    if not once:
        return 0
    # Through the log, so a script reading stderr as JSON gets JSON.
    summary = structlog.get_logger("ocr_watch")
    if outcome.account_problem:
        summary.error("once_account_refused", message=f"the service refused the account: {outcome.account_problem}",
                      unfinished=outcome.unfinished)
    elif outcome.stopped_early and outcome.unfinished:
        summary.warning("once_unfinished", stopped_by=outcome.stopped_early, unfinished=outcome.unfinished,
                        message=f"stopped by {outcome.stopped_early} with {outcome.unfinished} files unfinished; "
                                "their state is in the journal and the next run resumes them")
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
