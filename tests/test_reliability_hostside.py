"""The host side of the protocol against a hostile device (issue 7): hypothesis plays a device that answers
every command with random lines, some well formed, some with broken payloads (non-numbers, overflowing
numbers, wrong counts, binary bytes, missing m-ready). Whatever it sends, every ``protocol.Device`` call
either returns a well-typed value or raises ``DeviceError`` (ProtocolError / SerialTimeoutError) whose one
line names the port: never an IndexError, ValueError or UnicodeDecodeError traceback.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgedigit.core.errors import DeviceError
from edgedigit.targets.protocol import Device, DeviceInfo, InferResult, RunResult

PORT = "/dev/ttyHOSTILE0"
PAYLOADS = st.one_of(st.sampled_from(["", "0", "-1", "1.5", "nan", "inf", "1e999", "99999999999999999999999", "abc",
                                      "1,2", "1,,2", ",", "-", "ff", "\x00", "[", "]", "0" * 70, "a" * 64]),
                     st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=20))
KEYS = ["m-ed-protocol-", "m-ed-platform-", "m-ed-variant-", "m-ed-model-id-", "m-ed-backend-", "m-ed-model-sha256-",
        "m-ed-model-crc32-", "m-ed-crc-counter-", "m-ed-model-init-", "m-ed-input-bytes-", "m-ed-input-",
        "m-ed-outputs-", "m-ed-output-", "m-ed-scores-", "m-ed-arena-bytes-", "m-ed-protocol-bytes-", "m-ed-cmd-max-",
        "m-ed-counter-unit-", "m-buffer-", "m-ed-class-", "m-ed-raw-", "m-ed-counter-", "m-ed-us-", "m-results-", "m-name-dut-",
        "m-profile-", "m-model-", "m-"]


@st.composite
def line(draw) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind <= 5:  # a known key with a hostile payload
        body = f"{draw(st.sampled_from(KEYS))}[{draw(PAYLOADS)}]"
    elif kind == 6:
        body = f"m-lap-us-{draw(PAYLOADS)}"
    elif kind == 7:
        body = f"e-[{draw(PAYLOADS)}]"
    elif kind == 8:
        body = draw(st.sampled_from(["m-load-done", "m-[Expecting 784 bytes]", "m-[Expecting 5 bytes]",
                                     "m-infer-done", "m-ready"]))
    else:
        return draw(st.binary(max_size=40)).replace(b"\n", b"")
    return body.encode("latin-1")


class HostilePort:
    """A pyserial-like port whose device answers each command from a script of random lines. It echoes
    resync tokens correctly (so retries happen), and ends each answer with m-ready unless told not to."""

    def __init__(self, answers: list[list[bytes]], drop_ready: list[bool]):
        self.answers, self.drop_ready, self.n = answers, drop_ready, 0
        self.out, self._pending, self.timeout = b"", b"", 0.01

    @property
    def in_waiting(self) -> int:
        return len(self.out)

    def write(self, data: bytes) -> None:
        self._pending += data
        while b"%" in self._pending:
            cmd, self._pending = self._pending.split(b"%", 1)
            if cmd.startswith(b"ed-echo "):
                self.out += b"m-ed-echo-[" + cmd[8:] + b"]\r\nm-ready\r\n"
                continue
            if not cmd:
                self.out += b"m-ready\r\n"
                continue
            i = self.n % len(self.answers)
            self.n += 1
            self.out += b"".join(ln + b"\r\n" for ln in self.answers[i])
            if not self.drop_ready[i % len(self.drop_ready)]:
                self.out += b"m-ready\r\n"

    def flush(self) -> None:
        pass

    def read(self, n: int) -> bytes:
        if not self.out:
            time.sleep(0.001)
            return b""
        chunk, self.out = self.out[:n], self.out[n:]
        return chunk

    def close(self) -> None:
        pass


CALLS = {
    "name": (lambda d: d.name(), str),
    "profile": (lambda d: d.profile(), dict),
    "timestamp": (lambda d: d.timestamp(), int),
    "results": (lambda d: d.results(), tuple),
    "info": (lambda d: d.info(), DeviceInfo),
    "run": (lambda d: d.run(), RunResult),
    "infer": (lambda d: d.infer(2, 0), InferResult),
    "classify": (lambda d: d.classify(bytes(range(256)) * 3 + bytes(16)), RunResult),
    "load": (lambda d: d.load(b"\x01\x02\x03\x04\x05", frame_bytes=2), type(None)),
    "buffer": (lambda d: d.buffer(10, 2), bytes),
}


def _value_or_one_device_error(call: str, port: HostilePort) -> None:
    """Run ``call`` against ``port``: a value of the right type, or one DeviceError line naming the port."""
    d = Device(PORT, serial=port, timeout=0.05, retries=1)
    d.info_cache = DeviceInfo(2, "fuzz", "v", "v", "native", "0" * 64, "00000000", 0, 0, 784, "pixels", 10, "int8",
                              "dequantized", 0, 0, 1575, "ns") if call != "info" else None
    fn, kind = CALLS[call]
    try:
        value = fn(d)
    except DeviceError as e:
        msg = str(e)
        assert PORT in msg and "\n" not in msg, msg
        return
    assert isinstance(value, kind), value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(CALLS)), st.lists(st.lists(line(), max_size=6), min_size=1, max_size=4),
       st.lists(st.booleans(), min_size=1, max_size=3).map(lambda b: [x and i % 3 == 2 for i, x in enumerate(b)]))
def test_any_device_answer_gives_a_value_or_one_device_error(call, answers, drop_ready):
    _value_or_one_device_error(call, HostilePort(answers, drop_ready))


# every line a command's parser looks for, with hostile payloads: a much denser search of the parsers
SHAPES = {
    "name": ["m-name-dut-[{}]"],
    "profile": ["m-profile-[{}]", "m-model-[{}]"],
    "timestamp": ["m-lap-us-{}"],
    "results": ["m-results-[{}]"],
    "infer": ["m-warmup-start-{}", "m-lap-us-{}", "m-lap-us-{}", "m-results-[{}]"],
    "run": ["m-ed-class-[{}]", "m-ed-raw-[{}]", "m-ed-counter-[{}]", "m-ed-us-[{}]"],
    "classify": ["m-ed-class-[{}]", "m-ed-raw-[{}]", "m-ed-counter-[{}]", "m-ed-us-[{}]"],
    "info": [k + "[{}]" for k in KEYS[:18]],
    "buffer": ["m-buffer-{}"],
    "load": ["m-[Expecting {} bytes]", "m-load-done"],
}
NUMBERISH = st.one_of(PAYLOADS, st.integers(-(2**70), 2**70).map(str),
                      st.lists(st.integers(-300, 300), min_size=1, max_size=12).map(lambda v: ",".join(map(str, v))),
                      st.lists(st.floats(allow_nan=True), min_size=1, max_size=10).map(
                          lambda v: ",".join(f"{x:.3f}" for x in v)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SHAPES)), st.data())
def test_expected_lines_with_hostile_payloads(call, data):
    lines = [shape.format(data.draw(NUMBERISH)).encode("latin-1", "replace") for shape in SHAPES[call]]
    _value_or_one_device_error(call, HostilePort([lines], [False]))
