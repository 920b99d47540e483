"""The daemon works inside what the systemd unit's sandbox forbids, and needs nothing more.

systemd is not PID 1 in a test, so the unit itself cannot be started; instead the real
`ocr-watch run` is started in a mount namespace (`unshare --mount`) where every file system
is read-only (ProtectSystem=strict: all but /proc, /sys, /dev) except bind mounts of its
folders and its state_dir (ReadWritePaths=, StateDirectory=), as a user that is not root and
owns nothing else, with no capabilities and no new privileges (`setpriv`: NoNewPrivileges=,
CapabilityBoundingSet=), no memory both writable and executable where the kernel can refuse it
(PR_SET_MDWE, 6.3+: MemoryDenyWriteExecute=), and an empty environment: no HOME, no TMPDIR,
and /tmp read-only.
It must take files, its own and another user's, through the emulator to the outbox and the
archive with no warning logged: having succeeded where every other write fails is the proof
that it writes nowhere else. The sandbox itself is checked first, by a probe in the same
arrangement (who it is, what it can write).

Needs root (to build the namespace) and a kernel that allows it: it skips, saying why, only
when the kernel refuses the namespace or a read-only remount.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import ocr_watch
from ocr_watch.emulator import Emulator
from ocr_watch.testing import EMU_KEY, Daemon, png_bytes, sha256, wait_for

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

UID = 47113  # no user of this machine: owns nothing but the folders made for it here
REFUSED = 97  # the sandbox script's exit code when the kernel refuses a mount
# MemoryDenyWriteExecute=: where the kernel has PR_SET_MDWE (6.3+) it is set before exec'ing
# the command, and holds across exec; systemd does the same with a seccomp filter.
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
MDWE = f"""
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0)
os.execv(sys.argv[1], sys.argv[1:])
"""
PROBE = """
import json, mmap, os, pathlib, sys
import ocr_watch
def wx_refused():
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC).close()
    except OSError:
        return True
    return False
def writable(path):
    probe = pathlib.Path(path) / f".probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as exc:
        return exc.strerror
    probe.unlink()
    return True
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "env": sorted(os.environ),
                  "no_new_privs": status["NoNewPrivs"].strip(), "cap_eff": status["CapEff"].strip(),
                  "cap_bnd": status["CapBnd"].strip(), "package": ocr_watch.__file__, "wx_refused": wx_refused(),
                  "writable": {p: writable(p) for p in sys.argv[1:]}}))
"""


class Sandbox:
    """A root for one test under /var/tmp: the daemon's folders, its state_dir, a read-only
    copy of the package (the checkout may sit where another user cannot read, e.g. /root)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.scans, self.state, self.lib = base / "scans", base / "state", base / "lib"
        self.config = base / "etc" / "config.yaml"

    def build(self, base_url: str) -> None:
        self.base.chmod(0o755)
        (self.scans / "inbox").mkdir(parents=True)
        self.state.mkdir(mode=0o700)
        for path in (self.scans, self.scans / "inbox", self.state):
            os.chown(path, UID, UID)
        shutil.copytree(Path(ocr_watch.__file__).parent, self.lib / "ocr_watch",
                        ignore=shutil.ignore_patterns("__pycache__"))
        # Compiled now, as pip does at install: the daemon then has no reason to write there.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(self.lib)], check=True)
        self.config.parent.mkdir()
        self.config.write_text(yaml.safe_dump({
            "folders": {name: str(self.scans / name) for name in ("inbox", "outbox", "quarantine", "archive")},
            "state_dir": str(self.state),
            "api": {"base_url": base_url, "key": EMU_KEY, "requests_per_second": 50},
            "poll": {"interval_seconds": 0.1},
            "watch": {"settle_seconds": 0.2, "rescan_seconds": 0},
        }))

    def prefix(self) -> list[str]:
        """The command line before `python ...`: namespace, read-only remounts, then the user."""
        writable = " ".join(shlex.quote(str(p)) for p in (self.scans, self.state))
        script = f"""set -e
mount --make-rprivate /
{self._reach_interpreter()}
awk '{{print $2}}' /proc/self/mounts | sort -u | while read -r m; do
    case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue;; esac
    mount -o remount,bind,ro "$m" || exit {REFUSED}
done
for d in {writable}; do
    mount --bind "$d" "$d" && mount -o remount,bind,rw "$d" || exit {REFUSED}
done
exec "$@"
"""
        return ["unshare", "--mount", "sh", "-c", script, "sandbox",
                "setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all",
                "env", "-i", "PATH=/usr/bin:/bin", f"PYTHONPATH={self.lib}", "PYTHONUNBUFFERED=1",
                sys.executable, "-c", MDWE]


    def _reach_interpreter(self) -> str:
        """Shell lines that let the daemon's user reach this interpreter and its packages at
        their own paths (a library path may be compiled in), when they sit below a folder it
        cannot enter (pyenv in /root): the folder is covered with an empty tmpfs holding only
        those paths, bound back in. Installed as the unit's header says (/usr, /opt) there is
        nothing to do; ProtectHome= hides /root from the service anyway."""
        needed = {Path(sys.base_prefix), Path(sys.prefix)}
        needed |= {Path(p) for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()}
        by_blocker: dict[Path, list[Path]] = {}
        for path in sorted(needed):
            blocker = next((a for a in reversed(path.parents) if not os.stat(a).st_mode & 0o001), None)
            if blocker is not None:
                by_blocker.setdefault(blocker, []).append(path)
        lines = []
        for number, (blocker, paths) in enumerate(by_blocker.items()):
            stages = [self.base / "stage" / f"{number}-{i}" for i in range(len(paths))]
            for stage, path in zip(stages, paths, strict=True):
                stage.mkdir(parents=True)
                lines.append(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(stage))}")
            lines.append(f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(blocker))}")
            for stage, path in zip(stages, paths, strict=True):
                quoted = shlex.quote(str(path))
                lines.append(f"mkdir -p {quoted} && mount --bind {shlex.quote(str(stage))} {quoted}")
                lines.append(f"umount {shlex.quote(str(stage))}")
        return "\n".join(lines)


def kernel_has_mdwe() -> bool:
    """Whether this kernel knows PR_SET_MDWE (tried in a child, which it then binds)."""
    tried = subprocess.run([sys.executable, "-c", f"import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl("
                            f"{PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0)"], timeout=30)
    return tried.returncode == 0


@pytest.fixture
def sandbox(emulator: Emulator) -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        pytest.skip("building the sandbox (a mount namespace, another user) needs root; CI runs as root")
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (util-linux and mount are part of every Debian)")
    refused = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if refused.returncode != 0:
        pytest.skip(f"the kernel refuses a mount namespace here: {refused.stderr.strip()}")
    box = Sandbox(Path(tempfile.mkdtemp(prefix="ocr-watch-sandbox-", dir="/var/tmp")))
    try:
        box.build(emulator.base_url)
        yield box
    finally:
        shutil.rmtree(box.base)


def test_the_sandbox_is_what_it_claims(sandbox: Sandbox) -> None:
    places = [sandbox.scans / "inbox", sandbox.state, "/tmp", "/var/tmp", sandbox.base, sandbox.lib, "/"]
    probe = subprocess.run([*sandbox.prefix(), sys.executable, "-c", PROBE, *map(str, places)],
                           capture_output=True, text=True, cwd="/", timeout=60)
    if probe.returncode == REFUSED:
        pytest.skip(f"the kernel refuses a read-only remount here: {probe.stderr.strip()}")
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert (seen["uid"], seen["gid"], seen["groups"]) == (UID, UID, [])
    assert (seen["no_new_privs"], int(seen["cap_eff"], 16), int(seen["cap_bnd"], 16)) == ("1", 0, 0)
    assert "HOME" not in seen["env"] and "TMPDIR" not in seen["env"]
    assert seen["wx_refused"] == kernel_has_mdwe()
    assert seen["package"] == str(sandbox.lib / "ocr_watch" / "__init__.py")
    writable = seen["writable"]
    assert writable.pop(str(sandbox.scans / "inbox")) is True and writable.pop(str(sandbox.state)) is True
    assert writable == dict.fromkeys(writable, "Read-only file system"), writable


def test_the_daemon_does_its_work_where_all_else_is_read_only(sandbox: Sandbox, emulator: Emulator,
                                                              tmp_path: Path) -> None:
    daemon = Daemon(sandbox.config, tmp_path / "daemon.log", cwd=Path("/"), prefix=sandbox.prefix())
    daemon.start()
    try:
        proc = daemon.proc
        assert proc is not None
        wait_for(lambda: proc.poll() is not None or any(e.get("event") == "watching" for e in daemon.events()),
                 30, what="the daemon watching, or gone")
        assert proc.poll() is None, daemon.log_path.read_text()
        inbox = sandbox.scans / "inbox"
        theirs, ours = png_bytes(1), png_bytes(2)
        # One written by another user (root here, 0644: it may read it, not write it), one its own.
        (inbox / ".theirs.tmp").write_bytes(theirs)
        os.replace(inbox / ".theirs.tmp", inbox / "theirs.png")
        (inbox / ".ours.tmp").write_bytes(ours)
        os.chown(inbox / ".ours.tmp", UID, UID)
        os.replace(inbox / ".ours.tmp", inbox / "ours.png")
        outbox, archive = sandbox.scans / "outbox", sandbox.scans / "archive"
        wait_for(lambda: (archive / "theirs.png").is_file() and (archive / "ours.png").is_file(), 30,
                 what="both sources archived")
        for name, data in (("theirs", theirs), ("ours", ours)):
            assert f"source_sha256: {sha256(data)}" in (outbox / f"{name}.txt").read_text()
            assert (archive / f"{name}.png").read_bytes() == data
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    events = daemon.events()
    assert [e["event"] for e in events if e.get("event") == "file_done"] == ["file_done"] * 2
    # Left alone here, reported: another user's file is archived by rename (no hard link to a
    # file not ours: fs.protected_hardlinks), and watchdog holds the inbox's unpaired
    # IN_MOVED_FROM for 0.5 s; a stop within that logs this error from its emitter thread.
    watchdog_stop_race = {"event": "InotifyEmitter.queue_events() called when the thread is inactive",
                          "logger": "watchdog.observers.inotify"}
    assert [e for e in events if e.get("level") not in ("info", "debug")
            and {k: e.get(k) for k in watchdog_stop_race} != watchdog_stop_race] == []
    assert (sandbox.state / "journal.sqlite3").is_file()
    assert sorted(p.name for p in (sandbox.scans / "quarantine").iterdir()) == []
    # Everything it made is its own: it never needed to act as anyone else.
    made = [p for p in sandbox.scans.rglob("*") if p.name not in ("theirs.png",)] + [sandbox.state]
    assert {p.stat().st_uid for p in made} == {UID}
