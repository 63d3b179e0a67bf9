"""The host side of edgedigit's serial protocol (MLPerf Tiny / EEMBC DUT commands + edgedigit's ``ed-``).

The device side is ``firmware_templates/runtime/edgedigit_protocol.c``; both follow ``docs/protocol.md``.
Every command is ``text%``; the device answers zero or more lines and then ``m-ready``. Lines are parsed
with anchored regular expressions. Timeouts name the port and the last line received. Commands that are
safe to repeat (all of them but a half-sent ``db`` frame, which is repeated as a whole load) are retried
after a resynchronization (``%ed-echo TOKEN%``), so a garbled line or a lost byte costs one retry, not
the run. Nothing happens at import time.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from ..core.errors import DeviceError, SerialTimeoutError

READY = "m-ready"
POLL_S = 0.05  # read timeout of the port: how often a waiting read checks its deadline
PROTOCOL_VERSION = 2  # docs/protocol.md; the device's m-ed-protocol must equal it

RE_READY = re.compile(r"^m-ready$")
RE_ERROR = re.compile(r"^e-\[(.*)\]$")
RE_NAME = re.compile(r"^m-name-dut-\[([^]]+)\]$")
RE_PROFILE = re.compile(r"^m-(profile|model)-\[([^]]+)\]$")
RE_LAP = re.compile(r"^m-lap-us-([0-9]+)$")
RE_RESULTS = re.compile(r"^m-results-\[([^]]*)\]$")
RE_EXPECTING = re.compile(r"^m-\[Expecting ([0-9]+) bytes\]$")
RE_LOAD_DONE = re.compile(r"^m-load-done$")
RE_ED = re.compile(r"^m-ed-([a-z0-9-]+?)-\[([^]]*)\]$")
RE_BUFFER = re.compile(r"^m-buffer-([0-9a-f]{2}(?:-[0-9a-f]{2}){0,7})$")
RE_HEX32 = re.compile(r"^[0-9a-f]{8}$")
RE_INT_LIST = re.compile(r"^-?[0-9]+(,-?[0-9]+)*$")
RE_ECHO_TOKEN = re.compile(r"^[A-Za-z0-9]{1,16}$")

# ed-info keys and how to read them
_INFO_INT = {"protocol", "input-bytes", "outputs", "arena-bytes", "protocol-bytes", "cmd-max", "crc-counter"}
_INFO_SIGNED = {"model-init"}
_INFO_STR = {"platform", "variant", "model-id", "backend", "model-sha256", "model-crc32", "input", "output", "scores",
             "counter-unit"}


class ProtocolError(DeviceError):
    """The device answered, but not what the protocol says (an ``e-[...]`` line or a malformed answer)."""


@dataclass(frozen=True)
class DeviceInfo:
    """What ``ed-info%`` reports: the model on the device and how it measures."""

    protocol: int
    platform: str
    variant: str
    model_id: str  # what profile% reports (an MLPerf Tiny id, or the variant)
    backend: str
    model_sha256: str
    model_crc32: str  # 8 hex digits: CRC-32 of the model data in flash, computed at boot
    crc_counter: int  # what computing it cost, in counter units
    model_init: int  # edgedigit_model_init()'s result (0: ready)
    input_bytes: int  # bytes loaded per inference
    input: str  # pixels | int8 | uint8
    outputs: int  # raw outputs per inference
    output: str  # int8 | int32
    scores: str  # how m-results is formed: dequantized | softmax | mse
    arena_bytes: int
    protocol_bytes: int
    cmd_max: int
    counter_unit: str

    @property
    def classes(self) -> int:
        """Raw outputs per inference (the classes of a classifier)."""
        return self.outputs

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """One ``ed-run%``: predicted class, raw outputs, counter delta (device units) and microseconds."""

    predicted: int
    raw: tuple[int, ...]
    counter: int
    us: int


@dataclass(frozen=True)
class InferResult:
    """One MLPerf ``infer N W%``: the two laps (µs) and the results vector (dequantized outputs)."""

    count: int
    start_us: int
    end_us: int
    results: tuple[float, ...]

    @property
    def elapsed_us(self) -> int:
        return (self.end_us - self.start_us) % (1 << 32)


class Device:
    """A device that speaks edgedigit's protocol over a pyserial port or URL.

    Args:
        port: a serial device path (``/dev/ttyUSB0``, ``/dev/pts/5``) or a pyserial URL
            (``socket://127.0.0.1:4321``, ``loop://``).
        baud: baud rate for real ports.
        timeout: seconds to wait for each command's ``m-ready`` (``infer`` scales it with N).
        retries: how many times a safe command is repeated after a timeout or a garbled answer.
        serial: an already open pyserial-like object (tests); ``port`` then only names it in messages.
        open_timeout: seconds to keep trying to open the port (an emulator may still be starting).
    """

    def __init__(self, port: str, *, baud: int = 115200, timeout: float = 10.0, retries: int = 2,
                 serial: Any = None, open_timeout: float = 0.0) -> None:
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.last_line = ""
        self._buf = b""
        self._token = 0
        self._ser = serial if serial is not None else _open(port, baud, open_timeout)
        self.info_cache: DeviceInfo | None = None

    # ---- lifetime ----
    def close(self) -> None:
        try:
            self._ser.close()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- lines ----
    def _describe_last(self) -> str:
        return repr(self.last_line) if self.last_line else "nothing yet"

    def _vanished(self, e: BaseException) -> DeviceError:
        return DeviceError(f"port {self.port} vanished ({e}); last line received: {self._describe_last()}")

    def read_line(self, deadline: float, waiting_for: str) -> str:
        """The next line (without CR/LF) before ``deadline`` (``time.monotonic()``).

        Raises:
            SerialTimeoutError: nothing complete arrived in time (names the port, what was awaited and the
                last line).
            DeviceError: the port vanished.
        """
        import serial

        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                raw, self._buf = self._buf[:nl], self._buf[nl + 1:]
                line = raw.replace(b"\r", b"").replace(b"\0", b"").decode("ascii", errors="replace")
                self.last_line = line
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise SerialTimeoutError(f"port {self.port}: no answer to {waiting_for} in time; "
                                         f"last line received: {self._describe_last()}")
            try:  # the port's own read timeout is short (POLL_S); the deadline is kept here
                waiting = getattr(self._ser, "in_waiting", 0) or 1
                chunk = self._ser.read(min(waiting, 4096))
            except (serial.SerialException, OSError) as e:
                raise self._vanished(e) from None
            if chunk:
                self._buf += chunk

    def write(self, text: str) -> None:
        import serial

        try:
            self._ser.write(text.encode("ascii"))
            self._ser.flush()
        except (serial.SerialException, OSError) as e:
            raise self._vanished(e) from None

    def _exchange(self, command: str, timeout: float | None) -> list[str]:
        """Send ``command%`` and return the lines before ``m-ready``; ``e-[...]`` raises ProtocolError."""
        self.write(command + "%")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines: list[str] = []
        while True:
            line = self.read_line(deadline, f"'{_short(command)}%'")
            if RE_READY.match(line):
                break
            if line:
                lines.append(line)
        for line in lines:
            m = RE_ERROR.match(line)
            if m:
                raise ProtocolError(f"port {self.port}: device refused '{_short(command)}%': {m.group(1)}")
        return lines

    def sync(self, timeout: float | None = None) -> None:
        """Resynchronize: end any partial command, then wait for a fresh echo token and its ``m-ready``.

        Raises:
            SerialTimeoutError: the device never answered the echo.
        """
        self._token += 1
        token = f"s{self._token}x{int(time.monotonic() * 1000) % 100000}"
        self.write("%")
        self.write(f"ed-echo {token}%")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = False
        while True:
            line = self.read_line(deadline, f"resync 'ed-echo {token}%'")
            if line == f"m-ed-echo-[{token}]":
                seen = True
            elif seen and RE_READY.match(line):
                return

    def command(self, command: str, *, timeout: float | None = None, retry: bool = True) -> list[str]:
        """Run one command; on a timeout or an ``e-[...]`` answer resync and retry (if ``retry``).

        Returns:
            The answer's lines, without the final ``m-ready``.

        Raises:
            SerialTimeoutError: still no answer after every retry.
            ProtocolError: the device refused the command every time.
            DeviceError: the port vanished (never retried).
        """
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                return self._exchange(command, timeout)
            except (SerialTimeoutError, ProtocolError):
                if attempt == attempts - 1:
                    raise
                self.sync()
        raise AssertionError("unreachable")

    def _expect(self, lines: list[str], pattern: re.Pattern[str], command: str) -> re.Match[str]:
        for line in lines:
            m = pattern.match(line)
            if m:
                return m
        raise ProtocolError(f"port {self.port}: answer to '{command}%' lacks a line matching {pattern.pattern}; "
                            f"got {lines!r}")

    def _parsed(self, command: str, parse: Any, timeout: float | None = None) -> Any:
        """Run ``command`` and ``parse(lines)``; a malformed answer is retried like a timeout."""
        attempts = 1 + self.retries
        for attempt in range(attempts):
            try:
                return parse(self.command(command, timeout=timeout, retry=False))
            except (SerialTimeoutError, ProtocolError):
                if attempt == attempts - 1:
                    raise
                self.sync()
        raise AssertionError("unreachable")

    # ---- handshake ----
    def wait_boot(self, timeout: float = 10.0) -> None:
        """Wait until the device answers (it prints nothing at boot): resynchronize within ``timeout``."""
        self.sync(timeout=timeout)

    # ---- MLPerf Tiny DUT commands ----
    def name(self) -> str:
        return self._parsed("name", lambda ls: self._expect(ls, RE_NAME, "name").group(1))

    def profile(self) -> dict[str, str]:
        """``profile%``: ``{"profile": ..., "model": ...}``."""
        def parse(lines: list[str]) -> dict[str, str]:
            out = {m.group(1): m.group(2) for m in (RE_PROFILE.match(ln) for ln in lines) if m}
            if set(out) != {"profile", "model"}:
                raise ProtocolError(f"port {self.port}: answer to 'profile%' lacks m-profile/m-model; got {lines!r}")
            return out
        return self._parsed("profile", parse)

    def timestamp(self) -> int:
        return self._parsed("timestamp", lambda ls: int(self._expect(ls, RE_LAP, "timestamp").group(1)))

    def load(self, data: bytes, frame_bytes: int | None = None) -> None:
        """``db load N%`` then ``db HH..%`` frames; the whole load is repeated if any part fails.

        Args:
            data: 1..input-bytes bytes (ed-info; a digit image is 784 raw pixels).
            frame_bytes: bytes per ``db`` frame; default: as many as the device's command buffer takes.
        """
        limit = self.info().input_bytes
        if not 1 <= len(data) <= limit:
            raise DeviceError(f"port {self.port}: cannot load {len(data)} bytes (the model takes 1..{limit})")
        if frame_bytes is None:
            frame_bytes = max(1, (self.info().cmd_max - 3) // 2)
        attempts = 1 + self.retries
        for attempt in range(attempts):
            try:
                lines = self.command(f"db load {len(data)}", retry=False)
                m = self._expect(lines, RE_EXPECTING, "db load")
                if int(m.group(1)) != len(data):
                    raise ProtocolError(f"port {self.port}: device expects {m.group(1)} bytes, sent {len(data)}")
                for i in range(0, len(data), frame_bytes):
                    lines = self.command(f"db {data[i:i + frame_bytes].hex()}", retry=False)
                self._expect(lines, RE_LOAD_DONE, "db")
                return
            except (SerialTimeoutError, ProtocolError):
                if attempt == attempts - 1:
                    raise
                self.sync()

    def infer(self, count: int, warmups: int = 0) -> InferResult:
        """``infer N W%`` on the loaded bytes (MLPerf timing: two ``m-lap-us`` around N inferences)."""
        def parse(lines: list[str]) -> InferResult:
            laps = [int(m.group(1)) for m in (RE_LAP.match(ln) for ln in lines) if m]
            if len(laps) != 2:
                raise ProtocolError(f"port {self.port}: 'infer%' answered {len(laps)} m-lap-us lines, not 2")
            res = self._expect(lines, RE_RESULTS, "infer").group(1)
            return InferResult(count, laps[0], laps[1], self._floats(res, "infer"))
        return self._parsed(f"infer {count} {warmups}", parse, timeout=self.timeout * (1 + (count + warmups) / 100))

    def _floats(self, text: str, command: str) -> tuple[float, ...]:
        """The m-results values; a malformed number is a ProtocolError (retried), not a ValueError."""
        try:
            return tuple(float(v) for v in text.split(",") if v)
        except ValueError:
            raise ProtocolError(f"port {self.port}: answer to '{command}%' has a malformed number in "
                                f"m-results-[{_short(text)}]") from None

    def buffer(self, count: int = 16, offset: int = 0) -> bytes:
        """``db print N OFFSET%``: the loaded bytes from ``offset`` (at most ``count``)."""
        def parse(lines: list[str]) -> bytes:
            out = b""
            for line in lines:
                m = RE_BUFFER.match(line)
                if not m:
                    raise ProtocolError(f"port {self.port}: malformed answer to 'db print%': {line!r}")
                out += bytes.fromhex(m.group(1).replace("-", ""))
            return out
        return self._parsed(f"db print {count} {offset}", parse)

    def results(self) -> tuple[float, ...]:
        return self._parsed("results", lambda ls: self._floats(self._expect(ls, RE_RESULTS, "results").group(1),
                                                               "results"))

    # ---- edgedigit's commands ----
    def info(self) -> DeviceInfo:
        """``ed-info%`` (cached after the first call)."""
        if self.info_cache is None:
            self.info_cache = self._parsed("ed-info", self._parse_info)
        return self.info_cache

    def _parse_info(self, lines: list[str]) -> DeviceInfo:
        fields: dict[str, Any] = {}
        for line in lines:
            m = RE_ED.match(line)
            if not m:
                continue
            key, value = m.group(1), m.group(2)
            if key in _INFO_INT or key in _INFO_SIGNED:
                digits = value[1:] if key in _INFO_SIGNED and value.startswith("-") else value
                if not digits.isdigit() or len(digits) > 20:
                    raise ProtocolError(f"port {self.port}: ed-info field {key} is not a number: {value!r}")
                fields[key.replace("-", "_")] = int(value)
            elif key in _INFO_STR:
                fields[key.replace("-", "_")] = value
        missing = sorted(k for k in _INFO_INT | _INFO_SIGNED | _INFO_STR if k.replace("-", "_") not in fields)
        if missing:
            raise ProtocolError(f"port {self.port}: ed-info lacks {', '.join(missing)}; got {lines!r}")
        if not RE_HEX32.match(fields["model_crc32"]):
            raise ProtocolError(f"port {self.port}: ed-info model-crc32 is not 8 hex digits: {fields['model_crc32']!r}")
        if fields["protocol"] != PROTOCOL_VERSION:
            raise ProtocolError(f"port {self.port}: the device speaks protocol {fields['protocol']}, this edgedigit "
                                f"{PROTOCOL_VERSION}; export and flash the firmware again")
        return DeviceInfo(**fields)

    def run(self) -> RunResult:
        """``ed-run%``: one inference on the loaded image with the device's counter around it."""
        return self._parsed("ed-run", self._parse_run)

    def _parse_run(self, lines: list[str]) -> RunResult:
        got: dict[str, str] = {}
        for line in lines:
            m = RE_ED.match(line)
            if m:
                got[m.group(1)] = m.group(2)
        if not {"class", "raw", "counter", "us"} <= set(got) or not RE_INT_LIST.match(got["raw"]) or not (
                got["class"].isdigit() and got["counter"].isdigit() and got["us"].isdigit()):
            raise ProtocolError(f"port {self.port}: malformed answer to 'ed-run%': {lines!r}")
        raw = tuple(int(v) for v in got["raw"].split(","))
        if self.info_cache is not None and len(raw) != self.info_cache.classes:
            raise ProtocolError(f"port {self.port}: 'ed-run%' sent {len(raw)} raw outputs, the model has "
                                f"{self.info_cache.classes}")
        return RunResult(int(got["class"]), raw, int(got["counter"]), int(got["us"]))

    def classify(self, image: bytes) -> RunResult:
        """Run one input (the model's input bytes, ed-info's input-bytes; a digit image is 784 raw pixels):
        one ``ed-run DATA%`` if it fits the device's command buffer, else ``db load`` + ``db`` frames +
        ``ed-run%``."""
        info = self.info()
        if len(image) != info.input_bytes:
            raise DeviceError(f"port {self.port}: the model's input is {info.input_bytes} bytes, got {len(image)}")
        data = encode_zero_runs(image)
        if len("ed-run ") + len(data) <= info.cmd_max:
            return self._parsed(f"ed-run {data}", self._parse_run)
        self.load(image)
        return self.run()


def encode_zero_runs(data: bytes) -> str:
    """The compact data form of ``ed-run DATA%``: hex pairs, with ``zNN`` for NN + 1 zero bytes (2..256)."""
    out: list[str] = []
    i, n = 0, len(data)
    while i < n:
        if data[i] == 0:
            j = i
            while j < n and data[j] == 0 and j - i < 256:
                j += 1
            out.append("00" if j - i == 1 else f"z{j - i - 1:02x}")
            i = j
        else:
            out.append(f"{data[i]:02x}")
            i += 1
    return "".join(out)


def _short(command: str, limit: int = 40) -> str:
    return command if len(command) <= limit else command[:limit] + f"...({len(command)} chars)"


def _open(port: str, baud: int, open_timeout: float) -> Any:
    """Open a port or URL, retrying for ``open_timeout`` seconds (an emulator's socket may not listen yet)."""
    import serial

    deadline = time.monotonic() + open_timeout
    while True:
        try:
            return serial.serial_for_url(port, baudrate=baud, timeout=POLL_S, write_timeout=10)
        except (serial.SerialException, OSError, ValueError) as e:
            if time.monotonic() >= deadline:
                raise DeviceError(f"cannot open port {port}: {e}") from None
            time.sleep(0.05)
