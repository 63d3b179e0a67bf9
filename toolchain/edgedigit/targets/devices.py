"""Boards without hardware: build a ``host`` or ``qemu-m4`` firmware project with make, start it, stop it.

- ``host``: the firmware is a process; it prints ``edgedigit-host: serial on /dev/pts/N`` and that
  pseudo-terminal is its serial port.
- ``qemu-m4``: ``qemu-system-arm -M mps2-an386 -icount shift=0`` with the UART on a TCP socket
  (``-serial tcp:127.0.0.1:PORT,server=on,wait=on,nodelay=on``), opened as ``socket://127.0.0.1:PORT``.
  Its counter counts emulated instructions, not cycles of a real chip.

How each board is run comes from the ``[run]`` table of its board file. The process is always stopped
in a ``finally``; and it is started under ``setpriv --pdeathsig KILL`` (util-linux) where that exists, so a
run killed with SIGKILL (no ``finally``) does not leave the firmware or QEMU running.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import BoardError, DeviceError, ModelTooLargeError, ToolError

QEMU_NOTE = "emulated instructions, not cycles of a real chip"
# The word the qemu-m4 reset handler paints the stack with (firmware_templates/platform/qemu-m4/src/
# edgedigit_startup_m4.c, EDGEDIGIT_STACK_PAINT): words still painted were never used.
STACK_PAINT = 0xC5C5C5C5
_PTY_RE = re.compile(r"^edgedigit-host: serial on (\S+)$")
_QEMU_PTY_RE = re.compile(r"char device redirected to (/dev/pts/\d+)")
_HEAP_SYMBOLS = ("malloc", "_malloc_r", "calloc", "realloc", "free", "_sbrk", "sbrk")


@dataclass(frozen=True)
class RunSpec:
    """How a board without hardware is run (the board file's ``[run]`` table)."""

    kind: str  # "host" (process + pty) or "qemu"
    binary: str  # relative to the project root
    emulator: str = ""
    args: tuple[str, ...] = ()
    size_tool: str = ""
    nm_tool: str = ""
    boot_timeout_s: float = 20.0
    command_timeout_s: float = 10.0
    counter_note: str = ""


def run_spec(board: Any) -> RunSpec:
    """The board's ``[run]`` table as a RunSpec.

    Raises:
        BoardError: the board has no ``[run]`` table (a real board: use ``--port``) or a bad field.
    """
    table = dict(getattr(board, "run", {}) or {})
    if not table:
        raise BoardError(f"board {board.id} cannot be started here (no [run] in {board.path}); "
                         "connect the board and pass --port")
    known = set(RunSpec.__dataclass_fields__)
    unknown = sorted(set(table) - known)
    if unknown:
        raise BoardError(f"{board.path}: unknown field [run] '{unknown[0]}' (known: {', '.join(sorted(known))})")
    for key in ("kind", "binary"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise BoardError(f"{board.path}: field [run] '{key}' must be a non-empty string")
    if table["kind"] not in ("host", "qemu"):
        raise BoardError(f"{board.path}: field [run] 'kind' must be host or qemu, got {table['kind']!r}")
    if "args" in table:
        if not isinstance(table["args"], list) or not all(isinstance(a, str) for a in table["args"]):
            raise BoardError(f"{board.path}: field [run] 'args' must be a list of strings")
        table["args"] = tuple(table["args"])
    return RunSpec(**table)


def make(project: Path, timeout: float | None = None, jobs: int | None = None) -> None:
    """Build a make-based firmware project (``make -C project -jN``, N = the CPU count by default).

    A project with a ``tflm.mk`` may first compile TFLM into the build cache (minutes, once per library):
    its default timeout is an hour instead of 15 minutes.

    Raises:
        ToolError: make is missing, the build failed (the last lines of its output are quoted) or hung.
        OSError: the compiler could not write its output (a full or read-only disk: ENOSPC, EROFS, EDQUOT),
            naming the project's ``build/`` folder.
    """
    if shutil.which("make") is None:
        raise ToolError("make is not installed; install it (Debian: apt-get install make)")
    if timeout is None:
        timeout = 3600.0 if (Path(project) / "tflm.mk").is_file() else 900.0
    cmd = ["make", "-C", str(project), f"-j{jobs or os.cpu_count() or 1}"]
    try:
        proc = subprocess.run([*_die_with_parent(), *cmd], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"make in {project} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        for code in (errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)):
            if os.strerror(code) in output:  # the compiler could not write: the one line a refused write gets
                raise OSError(code, os.strerror(code), str(project / "build"))
        tail = " | ".join(output.strip().splitlines()[-6:])
        raise ToolError(f"make in {project} failed (exit {proc.returncode}): {tail}")


def _tool(name: str, what: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name} is not installed (needed to {what}); Debian: apt-get install "
                        f"{'qemu-system-arm' if 'qemu' in name else 'gcc-arm-none-eabi'}")
    return found


def elf_size(elf: Path, size_tool: str = "arm-none-eabi-size") -> dict[str, int]:
    """Section sizes of a firmware ELF (Berkeley format): text, data, bss, flash = text + data, ram = data + bss.

    Raises:
        ToolError: the size tool is missing or cannot read the file.
    """
    proc = subprocess.run([_tool(size_tool, "measure the firmware"), "-B", str(elf)], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or len(lines) < 2:
        raise ToolError(f"{size_tool} cannot read {elf}: {proc.stderr.strip()}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss}


def elf_sections(elf: Path, size_tool: str = "arm-none-eabi-size") -> dict[str, int]:
    """Every section's size in a firmware ELF (``size -A``): name -> bytes.

    Raises:
        ToolError: the size tool is missing or cannot read the file.
    """
    proc = subprocess.run([_tool(size_tool, "measure the firmware"), "-A", str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"{size_tool} cannot read {elf}: {proc.stderr.strip()}")
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def symbols(elf: Path, nm_tool: str = "arm-none-eabi-nm") -> dict[str, int]:
    """Symbol name -> address of a firmware ELF (``nm``)."""
    proc = subprocess.run([_tool(nm_tool, "list the firmware's symbols"), str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"{nm_tool} cannot read {elf}: {proc.stderr.strip()}")
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            try:
                out[parts[2]] = int(parts[0], 16)
            except ValueError:
                continue
    return out


def check_fits(sizes: dict[str, int], board: Any, elf: Path) -> None:
    """Refuse a firmware larger than the board's flash or RAM.

    Raises:
        ModelTooLargeError: naming the ELF, the board and both figures.
    """
    for key, limit in (("flash", board.flash_bytes), ("ram", board.ram_bytes)):
        if sizes[key] > limit:
            raise ModelTooLargeError(f"{elf}: needs {sizes[key]} bytes of {key}, board {board.id} has {limit}")


def heap_symbols(elf: Path, nm_tool: str = "arm-none-eabi-nm") -> list[str]:
    """Heap functions (malloc, free, sbrk, ...) defined in the firmware ELF; empty when none is linked."""
    proc = subprocess.run([_tool(nm_tool, "list the firmware's symbols"), str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"{nm_tool} cannot read {elf}: {proc.stderr.strip()}")
    # a dynamically linked (host) binary lists versioned imports: "U malloc@GLIBC_2.2.5"
    names = {ln.split()[-1].split("@")[0] for ln in proc.stdout.splitlines() if ln.strip()}
    return sorted(n for n in _HEAP_SYMBOLS if n in names)


def _die_with_parent() -> list[str]:
    """A command prefix that makes the started process die with this one (the kernel's parent-death signal)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv and os.uname().sysname == "Linux" else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    """A started firmware: the pyserial port/URL to talk to it, and its process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    spec: RunSpec
    qmp: Path | None = None  # QEMU's machine protocol socket (start(..., qmp=True)): reads the emulated RAM

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Stop the process now (the bench's tests use this to pull the plug mid-run)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def start(project: Path, board: Any, *, qmp: bool = False, pty: bool = False) -> Iterator[Running]:
    """Start a built host/qemu firmware project; stop it (terminate, then kill) when the block ends.

    Args:
        project: the built project.
        board: its board.
        qmp: (qemu) also open QEMU's machine protocol on a local socket, so :func:`read_memory` and
            :func:`stack_high_water` can read the emulated RAM.
        pty: give ``qemu-m4`` a pseudo-terminal (``-serial pty``) instead of a TCP socket, so a client that
            opens ports with plain ``serial.Serial`` (the MLPerf Tiny runner) can use it; ``host`` always has one.

    Raises:
        BoardError: the board has no ``[run]`` table.
        ToolError: the binary or emulator is missing, or the firmware did not come up in time.
    """
    spec = run_spec(board)
    project = Path(project)
    binary = project / spec.binary
    if not binary.is_file():
        raise ToolError(f"{binary} does not exist; build the project first (make -C {project})")
    log = project / "build" / "device.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as log_file:
        if spec.kind == "host":
            proc = subprocess.Popen([*_die_with_parent(), str(binary)], stdout=subprocess.PIPE, stderr=log_file,
                                    stdin=subprocess.DEVNULL)
            try:
                url = _read_pty_path(proc, binary, spec.boot_timeout_s)
                yield Running(url, proc, log, spec)
            finally:
                _stop(proc)
                if proc.stdout is not None:
                    proc.stdout.close()
        else:
            emulator = _tool(spec.emulator or "qemu-system-arm", "run the qemu-m4 board")
            if pty:
                cmd = [emulator, *spec.args, "-kernel", str(binary), "-serial", "pty"]
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL)
                try:
                    yield Running(_read_pty_path(proc, binary, spec.boot_timeout_s, _QEMU_PTY_RE,
                                                 "char device redirected to /dev/pts/N"), proc, log, spec)
                finally:
                    _stop(proc)
                    if proc.stdout is not None:
                        proc.stdout.close()
                return
            port = _free_port()
            cmd = [*_die_with_parent(), emulator, *spec.args, "-kernel", str(binary),
                   "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"]
            with contextlib.ExitStack() as stack:
                sock = None
                if qmp:  # a short path: unix socket names are limited to ~100 bytes
                    sock = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edq-"))) / "qmp"
                    cmd += ["-qmp", f"unix:{sock},server=on,wait=off"]
                proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                try:
                    yield Running(f"socket://127.0.0.1:{port}", proc, log, spec, sock)
                finally:
                    _stop(proc)


def _qmp_call(f: Any, command: dict[str, Any]) -> Any:
    """Send one QMP command and return its ``return`` value (events in between are skipped)."""
    f.write(json.dumps(command).encode() + b"\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            raise DeviceError(f"QEMU closed its QMP socket during {command['execute']}")
        reply = json.loads(line)
        if "error" in reply:
            raise DeviceError(f"QEMU refused {command['execute']}: {reply['error'].get('desc', reply['error'])}")
        if "return" in reply:
            return reply["return"]


def read_memory(running: Running, address: int, size: int, timeout: float = 10.0) -> bytes:
    """``size`` bytes of the emulated board's memory at ``address`` (QMP ``pmemsave``).

    Raises:
        DeviceError: the firmware was not started with ``qmp=True``, or QEMU did not answer.
    """
    if running.qmp is None:
        raise DeviceError("reading the emulated memory needs the firmware started with start(..., qmp=True)")
    out = running.qmp.with_name("memory.bin")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(timeout)
                s.connect(str(running.qmp))
                with s.makefile("rwb") as f:
                    json.loads(f.readline() or b"{}")  # the greeting
                    _qmp_call(f, {"execute": "qmp_capabilities"})
                    _qmp_call(f, {"execute": "pmemsave",
                                  "arguments": {"val": address, "size": size, "filename": str(out)}})
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline or not running.alive():
                raise DeviceError(f"QEMU's QMP socket {running.qmp} did not open; see {running.log}") from None
            time.sleep(0.05)
        except (OSError, ValueError) as e:
            raise DeviceError(f"reading memory through QEMU's QMP socket failed: {e}") from None
    data = out.read_bytes()
    out.unlink()
    if len(data) != size:
        raise DeviceError(f"QEMU wrote {len(data)} bytes of memory at {address:#x}, not {size}")
    return data


def stack_high_water(running: Running, elf: Path, nm_tool: str = "arm-none-eabi-nm") -> dict[str, int]:
    """The deepest stack use since reset of a started qemu-m4 firmware, from its painted stack.

    The reset handler fills the stack (``__stack_start`` .. ``__stack_top``) with :data:`STACK_PAINT`; the
    words still painted were never written. Returns ``{"stack_bytes": reserved, "stack_used": high-water}``.

    Raises:
        ToolError: the ELF has no ``__stack_start``/``__stack_top`` (not a qemu-m4 firmware of this version).
        DeviceError: the memory cannot be read.
    """
    syms = symbols(elf, nm_tool)
    if "__stack_start" not in syms or "__stack_top" not in syms:
        raise ToolError(f"{elf}: no __stack_start/__stack_top symbols; export the project again")
    start, top = syms["__stack_start"], syms["__stack_top"]
    words = np.frombuffer(read_memory(running, start, top - start), dtype="<u4")
    untouched = int(np.argmax(words != STACK_PAINT)) if (words != STACK_PAINT).any() else len(words)
    return {"stack_bytes": top - start, "stack_used": top - start - 4 * untouched}


def _read_pty_path(proc: subprocess.Popen[bytes], binary: Path, timeout: float, pattern: re.Pattern[str] = _PTY_RE,
                   expected: str = "edgedigit-host: serial on /dev/pts/N") -> str:
    """The pseudo-terminal path the process prints on its first stdout line (``pattern``'s group 1)."""
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            raise ToolError(f"{binary} printed no serial port within {timeout:.0f} s")
        chunk = os.read(proc.stdout.fileno(), 256)
        if not chunk:
            raise ToolError(f"{binary} exited (code {proc.wait()}) before printing its serial port")
        buf += chunk
    line = buf.split(b"\n", 1)[0].decode(errors="replace").strip()
    m = pattern.search(line)
    if not m:
        raise ToolError(f"{binary} printed {line!r} instead of '{expected}'")
    return m.group(1)


def open_device(running: Running, *, baud: int = 115200) -> Any:
    """Open the started firmware's port and resynchronize: a ``protocol.Device`` ready for commands.

    Raises:
        DeviceError: the port cannot be opened or the firmware does not answer.
    """
    from .protocol import Device

    if not running.alive():
        raise DeviceError(f"the firmware process exited (code {running.process.returncode}); see {running.log}")
    dev = Device(running.url, baud=baud, timeout=running.spec.command_timeout_s,
                 open_timeout=running.spec.boot_timeout_s)
    try:
        dev.sync(timeout=running.spec.boot_timeout_s)
    except BaseException:
        dev.close()
        raise
    return dev
