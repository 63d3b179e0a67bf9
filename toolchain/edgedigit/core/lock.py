"""One writer at a time per build folder: an OS file lock on ``<build>/.edgedigit.lock``.

Commands that write into the build folder (train, quantize, validate, export, build, flash, bench, report,
pipeline) hold it while they run; ``cli.root`` takes it for the commands it marks as writers, so readers
(boards, data, select, ``--help``) are never blocked. The lock is ``flock(2)`` on an open file: the kernel
releases it when the process ends, however it ends (SIGKILL included), so there is no stale lock to remove.
The holder writes its pid and command into the file; a second writer is refused at once with them.

Taking the lock also sweeps the build folder for what a killed writer left half replaced
(:func:`edgedigit.core.fsutil.sweep`): no other writer can be staging there at that moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import BuildLockedError
from .fsutil import sweep
from .paths import build_dir

LOCK_NAME = ".edgedigit.lock"


def lock_path(build: Path | None = None) -> Path:
    """``<build>/.edgedigit.lock``."""
    return Path(build if build is not None else build_dir()) / LOCK_NAME


def holder(path: Path) -> dict:
    """What the lock file says about its holder (``pid``, ``command``); empty when unreadable."""
    for _ in range(20):  # the holder writes its record just after locking: give it a moment
        try:
            info = json.loads(Path(path).read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if isinstance(info, dict) and info.get("pid"):
            return info
        time.sleep(0.01)
    return {}


@contextlib.contextmanager
def build_lock(command: str, build: Path | None = None) -> Iterator[Path]:
    """Hold the build folder's lock for the block (creating the folder), or refuse at once.

    Args:
        command: what this process is doing (recorded for a refused second writer to read).
        build: the build folder (default ``$EDGEDIGIT_BUILD`` or ``./build``).

    Yields:
        The lock file's path.

    Raises:
        BuildLockedError: another process holds it; the message names its pid and command.
        OSError: the folder cannot be created or written (a read-only or full file system).
    """
    root = Path(build if build is not None else build_dir())
    path = lock_path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = holder(path)
            who = f"pid {info['pid']}: {info.get('command', '?')}" if info else "pid unknown"
            raise BuildLockedError(f"another edgedigit run is using the build folder {root} ({who}); wait for it "
                                   "to finish, or use another folder (EDGEDIGIT_BUILD)") from None
        record = json.dumps({"pid": os.getpid(), "command": command}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        try:
            sweep(root)
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no stale record for the next reader
    finally:
        os.close(fd)  # releases the flock (the file stays: removing it would race with the next writer)
