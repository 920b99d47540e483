"""The `status` and `retry` commands' output and exit codes (the CLI only dispatches here)."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from ocr_watch.config import Config
from ocr_watch.names import readable

from . import status as status_mod
from .retry import retry

__all__ = ["run_admin"]


def run_admin(command: str, config: Config, args: argparse.Namespace) -> int:
    """`status`: 0 (2 if the journal cannot be read); `retry`: 0, 1 if a PATH is not in
    quarantine, 2 for a job that is not configured (or paths without --job among several)."""
    if command == "status":
        try:
            found = status_mod.gather(config)
        except sqlite3.DatabaseError as exc:
            print(f"ocr-watch: cannot read the journal in {config.state_dir}: {exc}", file=sys.stderr)
            return 2
        print(status_mod.as_json(found) if args.json else status_mod.human(found), end="\n" if args.json else "")
        return 0
    jobs = {job.name: job for job in config.jobs}
    job = None
    if args.job is not None:
        job = jobs.get(args.job)
        if job is None:
            print(f"ocr-watch: retry: no job '{args.job}' (jobs: {', '.join(jobs)})", file=sys.stderr)
            return 2
    try:
        moved, missing = retry(config, list(args.paths), job)
    except ValueError as exc:
        print(f"ocr-watch: retry: {exc} ({', '.join(jobs)})", file=sys.stderr)
        return 2
    several = len(jobs) > 1
    for item in moved:
        report = f"; report to {item.report_to}" if item.report_to else ""
        print(f"{item.job + ': ' if several else ''}{readable(item.rel)} -> inbox {readable(item.to)}{report}")
    where = (job or config.jobs[0]).folders.quarantine
    for text in missing:
        print(f"ocr-watch: retry: {readable(text)}: not in quarantine ({where})", file=sys.stderr)
    if not moved and not missing:
        print("nothing in quarantine")
    return 1 if missing else 0
