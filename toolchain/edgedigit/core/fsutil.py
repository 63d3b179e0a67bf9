"""Writing outputs so that a failure half way never leaves a half-written file or folder behind.

Every temporary name edgedigit writes through is spelled ``.<final name>.<pid>-<tag>.edtmp`` (a file for
:func:`write_atomic`, a folder for :func:`staged_dir`), and the previous output a staged replace moves aside
is ``.<final name>.<pid>-<tag>.edold``. The pid says whose it is: :func:`sweep` removes those of processes
that no longer run (a run killed with SIGKILL cannot clean up after itself) and puts an ``.edold`` back
when its final is missing (a kill between the two renames of a replace), so the old output is never lost.
Temporary files and folders get the permissions of the umask, like any file the user creates.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".edtmp"
OLD_SUFFIX = ".edold"
_SIDE_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<tag>[0-9a-f]+)(?P<kind>\.edtmp|\.edold)$")


def _side_name(final: Path, suffix: str) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _named(e: OSError, path: Path, *hidden: Path) -> OSError:
    """``e`` naming ``path`` when it names nothing, or what a ``hidden`` temporary name stands for.

    A name inside a staged folder is mapped to the same name inside its final folder.
    """
    if e.errno is None and isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list):
        for _, dst, why in e.args[0]:  # shutil.copytree gathers its errors as text: the first with an errno
            m = re.search(r"\[Errno (\d+)\]", str(why))
            if m:
                return _named(OSError(int(m[1]), os.strerror(int(m[1])), str(dst)), path, *hidden)
    if e.errno is None:  # not from the OS (a message only): leave it as it is
        return e
    name = None if e.filename is None else str(e.filename)
    if name is None:
        name = str(path)
    else:
        for h in map(str, hidden):
            if name == h or name.startswith(h + os.sep):
                name = str(path) + name[len(h):]
                break
        else:
            return e
    named = OSError(e.errno, e.strerror or os.strerror(e.errno), name)
    named.__cause__ = e
    return named


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def recover(final: Path) -> None:
    """Put back the previous output of an interrupted replace of ``final`` and drop dead runs' leftovers.

    An ``.edold`` of a dead process is renamed back to ``final`` when ``final`` is missing (the kill came
    between the two renames), else removed; an ``.edtmp`` of a dead process is removed.
    """
    final = Path(final)
    try:
        siblings = list(final.parent.iterdir())
    except OSError:
        return
    for p in sorted(siblings):
        m = _SIDE_RE.match(p.name)
        if m is None or m["name"] != final.name or _alive(int(m["pid"])):
            continue
        if m["kind"] == OLD_SUFFIX and not final.exists() and not final.is_symlink():
            with contextlib.suppress(OSError):
                p.rename(final)
                continue
        _remove(p)


def sweep(root: Path, depth: int = 3) -> list[Path]:
    """:func:`recover` every output under ``root`` (``depth`` folder levels) that a dead run left half replaced.

    Called when a command takes the build folder's lock (:mod:`.lock`): no other writer runs then.

    Returns:
        The leftovers found (removed, or renamed back to their final name).
    """
    found: list[Path] = []
    level = [Path(root)]
    for _ in range(depth):
        nxt = []
        for folder in level:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            finals = set()
            for p in entries:
                m = _SIDE_RE.match(p.name)
                if m is not None and not _alive(int(m["pid"])):
                    found.append(p)
                    finals.add(folder / m["name"])
                elif p.is_dir() and not p.is_symlink() and m is None:
                    nxt.append(p)
            for final in sorted(finals):
                recover(final)
        level = nxt
    return found


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it replaces ``final``.

    On any exception the temporary folder is removed and ``final`` (if it existed) is left untouched. The
    replace renames the old ``final`` aside, the new one in, then removes the old one: a kill between the
    two renames leaves the old output under its ``.edold`` name, and the next :func:`recover` (or
    :func:`sweep`) puts it back. An OSError names ``final``, not the hidden temporary name.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _named(e, final.parent) from None
    recover(final)
    tmp = _side_name(final, TMP_SUFFIX)
    try:
        os.mkdir(tmp, 0o777)  # the umask's permissions (tempfile.mkdtemp would make it 0700)
    except OSError as e:
        raise _named(e, final, tmp) from None
    try:
        yield tmp
    except OSError as e:
        _remove(tmp)
        raise _named(e, final, tmp) from None
    except BaseException:
        _remove(tmp)
        raise
    old = _side_name(final, OLD_SUFFIX)
    try:
        if final.exists() or final.is_symlink():
            final.rename(old)
        try:
            tmp.rename(final)
        except BaseException:
            if old.exists() and not final.exists():
                old.rename(final)
            raise
    except OSError as e:
        _remove(tmp)
        raise _named(e, final, tmp, old) from None
    _remove(old)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file through a temporary name and ``os.replace`` so readers never see half of it.

    The file gets the umask's permissions; an OSError (a full disk, a read-only folder) names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _named(e, path.parent) from None
    tmp = _side_name(path, TMP_SUFFIX)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _named(e, path, tmp) from None


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (same object, same bytes)."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=jsonable) + "\n")


def jsonable(o: Any) -> Any:
    """``json.dumps`` default for numpy scalars and arrays and paths."""
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

