"""The serial protocol, both sides: the device C (protocol + host platform + a stand-in runner) driven over
its pseudo-terminal by ``edgedigit.targets.protocol``, hostile input included; and the host side against a scripted
fake port (timeouts, retries, a vanished port)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import serial

from conftest import require_tool
from edgedigit.core.errors import DeviceError, SerialTimeoutError
from edgedigit.targets import devices
from edgedigit.targets.boards import load_board
from edgedigit.targets.protocol import Device, ProtocolError, encode_zero_runs
from helpers import RUNNER_CRC, SHA, assemble, expected, image


@pytest.fixture(scope="module")
def host_project(tmp_path_factory):
    require_tool("cc")
    proj = assemble(tmp_path_factory.mktemp("proto") / "host", "host")
    devices.make(proj)
    return proj


@pytest.fixture
def dev(host_project):
    with devices.start(host_project, load_board("host")) as running:
        d = devices.open_device(running)
        try:
            yield d
        finally:
            d.close()


def raw_exchange(d: Device, text: str, timeout: float = 5.0) -> list[str]:
    """Send bytes as they are and return the lines up to the next m-ready (no retry, no resync)."""
    d._ser.write(text.encode("latin-1"))
    deadline = time.monotonic() + timeout
    lines = []
    while (line := d.read_line(deadline, "test")) != "m-ready":
        lines.append(line)
    return lines


# ---- every command ---------------------------------------------------------------------------------------

def test_mlperf_commands(dev):
    assert dev.name() == "edgedigit host"
    assert dev.profile() == {"profile": "edgedigit", "model": "tr01"}  # the runner's model id (MLPerf's)
    t0 = dev.timestamp()
    assert dev.timestamp() >= t0
    px = image(1)
    dev.load(px, frame_bytes=31)  # the MLPerf runner's frame size
    res = dev.infer(3, 2)
    cls, raw = expected(px)
    assert res.count == 3 and res.end_us >= res.start_us
    assert res.results == tuple((r + 128) * 0.5 for r in raw)  # runner: scale 0.5, zero point -128
    assert dev.results() == res.results


def test_infer_answer_lines_in_eembc_order(dev):
    dev.load(image(2))
    lines = raw_exchange(dev, "infer 2 1%")
    assert lines[:3] == ["m-warmup-start-1", "m-warmup-done", "m-infer-start-2"]
    assert lines[3].startswith("m-lap-us-") and lines[4].startswith("m-lap-us-")
    assert lines[5] == "m-infer-done" and lines[6].startswith("m-results-[")
    assert len(lines) == 7


def test_ed_info(dev):
    info = dev.info()
    assert (info.platform, info.variant, info.model_id, info.backend, info.model_sha256) == (
        "host", "testrunner", "tr01", "test", SHA)
    assert (info.outputs, info.output, info.arena_bytes, info.counter_unit) == (10, "int8", 1234, "ns")
    assert (info.input_bytes, info.input, info.scores, info.model_init) == (784, "pixels", "dequantized", 0)
    assert info.cmd_max == 7 + 2 * 784 and info.protocol == 2 and info.protocol_bytes == 7 + 2 * 784 + 1
    # the CRC-32 the firmware computed at boot over the runner's model data regions, as zlib computes it
    assert info.model_crc32 == RUNNER_CRC and info.crc_counter > 0


def test_no_output_before_the_first_command(host_project):
    """A client that opens the port late (the MLPerf runner: plain serial.Serial, no resync) reads, as the
    first line, the answer to its own first command: nothing is printed unasked at boot."""
    with devices.start(host_project, load_board("host")) as running:
        time.sleep(0.5)  # the firmware is up and idle before the client opens its port
        with serial.Serial(running.url, 115200, timeout=0.2) as port:
            time.sleep(0.3)
            assert port.read(4096) == b""  # nothing arrives unasked
            port.write(b"name%")
            d = Device(running.url, serial=port, timeout=5.0)
            assert d.read_line(time.monotonic() + 5, "name") == "m-name-dut-[edgedigit host]"
            assert d.read_line(time.monotonic() + 5, "name") == "m-ready"


def test_db_print_shows_the_loaded_bytes(dev):
    px = image(12)
    dev.load(px, frame_bytes=31)
    assert dev.buffer(16, 0) == px[:16] and dev.buffer(20, 770) == px[770:784]
    lines = raw_exchange(dev, "db print%")  # default: 16 bytes from offset 0, 8 per line
    assert lines == ["m-buffer-" + "-".join(f"{b:02x}" for b in px[i:i + 8]) for i in (0, 8)]
    assert raw_exchange(dev, "db print 3 785%") == ["e-[db print offset beyond the 784 bytes loaded]"]


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_ed_run_compact_and_framed_give_the_runner_outputs(dev, seed):
    px = image(seed)
    cls, raw = expected(px)
    a = dev.classify(px)  # one ed-run DATA% with zero runs
    dev.load(px, frame_bytes=100)
    b = dev.run()
    assert a.predicted == b.predicted == cls
    assert list(a.raw) == list(b.raw) == raw


def test_zero_run_encoding_round_trip():
    px = bytes([0] * 300 + [5, 0, 7] + [0] * 2 + [255] * 3 + [0] * 476)
    enc = encode_zero_runs(px)
    assert enc == "zff" + "z2b" + "05" + "00" + "07" + "z01" + "ffffff" + "zff" + "zdb"
    assert "z" not in encode_zero_runs(bytes(range(1, 200)))


def test_all_black_and_all_white_images(dev):
    for px in (bytes(784), bytes([255]) * 784):
        assert list(dev.classify(px).raw) == expected(px)[1]


# ---- a hostile line: the device answers the next valid command -----------------------------------------

def test_unknown_command_is_an_error_then_ready(dev):
    assert raw_exchange(dev, "bogus%") == ["e-[unknown command or wrong arguments; try help%]"]
    assert dev.name() == "edgedigit host"


def test_garbage_between_commands(dev):
    import numpy as np

    rng = np.random.default_rng(7)
    for _ in range(5):
        junk = bytes(rng.integers(0, 256, 200, dtype=np.uint8)).replace(b"%", b"")
        dev._ser.write(junk)
        dev.sync()
        assert dev.name() == "edgedigit host"
    px = image(8)
    assert list(dev.classify(px).raw) == expected(px)[1]


def test_non_printable_bytes_refuse_the_command(dev):
    assert raw_exchange(dev, "na\x01me%") == ["e-[command with non-printable bytes discarded]"]
    assert raw_exchange(dev, "name%") == ["m-name-dut-[edgedigit host]"]


def test_overlong_command(dev):
    lines = raw_exchange(dev, "x" * 5000 + "%")
    assert lines == [f"e-[command longer than {7 + 2 * 784} bytes discarded]"]
    assert raw_exchange(dev, "name%") == ["m-name-dut-[edgedigit host]"]


def test_db_load_larger_than_the_buffer(dev):
    assert raw_exchange(dev, "db load 785%") == ["e-[db load of 785 bytes exceeds the model's input of 784 bytes]"]
    assert raw_exchange(dev, "db load 99999999999%") == ["e-[db load needs a byte count 1..784]"]
    assert raw_exchange(dev, "db load 0%") == ["e-[db load needs a byte count 1..784]"]
    assert raw_exchange(dev, "db 00%") == ["e-[db data without a db load in progress]"]


def test_bad_hex_frames_are_ignored_whole(dev):
    px = image(9)
    assert raw_exchange(dev, "db load 784%") == ["m-[Expecting 784 bytes]"]
    assert raw_exchange(dev, "db " + px[:10].hex() + "%") == []
    assert raw_exchange(dev, "db 123%") == ["e-[data ends inside a byte at offset 2 (odd number of hex digits); "
                                            "frame ignored]"]
    assert raw_exchange(dev, "db 12g4%") == ["e-[non-hex character near offset 2; frame ignored]"]
    assert raw_exchange(dev, "db z1%") == ["e-[non-hex character near offset 0; frame ignored]"]  # no runs in db
    assert raw_exchange(dev, "db " + "00" * 775 + "%") == ["e-[data overruns the load of 784 bytes; frame ignored]"]
    assert raw_exchange(dev, "ed-run%")[0].startswith("e-[no complete input loaded")
    # the bad frames stored nothing: the load continues where the good frame left it
    assert raw_exchange(dev, "db " + px[10:].hex() + "%") == ["m-load-done"]
    assert list(dev.run().raw) == expected(px)[1]


def test_bad_ed_run_data(dev):
    assert raw_exchange(dev, "ed-run zff%")[0].startswith("e-[no complete input loaded: need db load 784")
    assert raw_exchange(dev, "ed-run zffzffzffz10%") == ["e-[data overruns the load of 784 bytes; frame ignored]"]
    assert raw_exchange(dev, "ed-run zq0%") == ["e-[non-hex character near offset 1; frame ignored]"]
    assert raw_exchange(dev, "ed-run z%") == [
        "e-[data ends inside a byte at offset 0 (odd number of hex digits); frame ignored]"]
    px = image(10)
    assert list(dev.classify(px).raw) == expected(px)[1]


def test_wrong_arguments(dev):
    err = "e-[infer needs N (1..100000000) and optionally W (0..100000000)]"
    for cmd in ("infer%", "infer 0 1%", "infer -1 1%", "infer 1 x%", "infer 1 2 3%", "infer 1000000000 0%"):
        assert raw_exchange(dev, cmd) == [err], cmd
    assert raw_exchange(dev, "infer 1 0%")[0].startswith("e-[no complete input loaded")
    assert raw_exchange(dev, "results%") == ["e-[no results: run infer first]"]
    assert raw_exchange(dev, "name extra%") == ["e-[unknown command or wrong arguments; try help%]"]
    assert raw_exchange(dev, "a b c d e%") == ["e-[too many words in the command]"]
    assert raw_exchange(dev, "ed-echo " + "a" * 17 + "%") == ["e-[unknown command or wrong arguments; try help%]"]


def test_empty_commands_and_line_ends(dev):
    assert raw_exchange(dev, "%") == []
    assert raw_exchange(dev, "   %") == []
    assert raw_exchange(dev, "\r\nname\r\n%") == ["m-name-dut-[edgedigit host]"]


def test_model_failure_is_reported(dev):
    px = bytes([255, 1]) + bytes(782)
    with pytest.raises(ProtocolError, match=r"refused 'ed-run .*model invoke failed with code -3"):
        dev.classify(px)
    assert dev.name() == "edgedigit host"


def test_cut_frame_is_dropped_after_silence(dev):
    dev._ser.write(b"db load 78")  # cut in the middle
    time.sleep(2.3)  # longer than the device's 2 s frame timeout
    assert raw_exchange(dev, "name%") == ["m-name-dut-[edgedigit host]"]


def test_slow_sender(dev):
    for ch in b"name%":
        dev._ser.write(bytes([ch]))
        time.sleep(0.05)
    deadline = time.monotonic() + 5
    assert dev.read_line(deadline, "slow") == "m-name-dut-[edgedigit host]"
    assert dev.read_line(deadline, "slow") == "m-ready"


def test_help_lists_commands(dev):
    lines = raw_exchange(dev, "help%")
    assert any("infer N W%" in ln for ln in lines) and any("ed-run" in ln for ln in lines)


# ---- the host side against a scripted port -----------------------------------------------------------------

class ScriptedPort:
    """A pyserial-like port: answers each '%'-terminated write from a script of callables/strings."""

    def __init__(self, answer):
        self.answer = answer
        self.out = b""
        self.written: list[str] = []
        self.timeout = 0.1
        self.vanish = False
        self._pending = b""

    @property
    def in_waiting(self):
        return len(self.out)

    def write(self, data):
        if self.vanish:
            raise serial.SerialException("device disconnected")
        self._pending += data
        while b"%" in self._pending:
            cmd, self._pending = self._pending.split(b"%", 1)
            self.written.append(cmd.decode())
            reply = self.answer(cmd.decode())
            self.out += reply.encode()

    def flush(self):
        pass

    def read(self, n):
        if self.vanish:
            raise serial.SerialException("read failed: device disconnected")
        if not self.out:
            time.sleep(min(self.timeout, 0.01))
            return b""
        chunk, self.out = self.out[:n], self.out[n:]
        return chunk

    def close(self):
        pass


def echo_or(fn):
    def answer(cmd):
        if cmd.startswith("ed-echo "):
            return f"m-ed-echo-[{cmd.split()[1]}]\r\nm-ready\r\n"
        if cmd == "":
            return "m-ready\r\n"
        return fn(cmd)
    return answer


def test_timeout_names_port_and_last_line():
    port = ScriptedPort(echo_or(lambda cmd: "m-half-an-answer\r\n"))
    d = Device("/dev/ttyFAKE0", serial=port, timeout=0.3, retries=1)
    with pytest.raises(SerialTimeoutError, match=r"port /dev/ttyFAKE0: no answer to 'name%' in time; "
                                                  r"last line received: 'm-half-an-answer'"):
        d.name()
    assert port.written.count("name") == 2  # retried once after a resync


def test_silence_names_port_and_nothing_yet():
    port = ScriptedPort(lambda cmd: "")
    d = Device("socket://127.0.0.1:1", serial=port, timeout=0.2, retries=0)
    with pytest.raises(SerialTimeoutError, match=r"socket://127.0.0.1:1.*last line received: nothing yet"):
        d.timestamp()


def test_retry_recovers_from_a_garbled_answer():
    calls = {"n": 0}

    def answer(cmd):
        calls["n"] += 1
        if calls["n"] == 1:
            return "m-name-d\x00ut-[garb\r\nm-ready\r\n"  # a mangled line
        return "m-name-dut-[edgedigit fake]\r\nm-ready\r\n"

    port = ScriptedPort(echo_or(answer))
    d = Device("loop-fake", serial=port, timeout=1.0, retries=2)
    assert d.name() == "edgedigit fake"
    assert port.written[0] == "name" and port.written[-1] == "name"
    assert any(w.startswith("ed-echo ") for w in port.written)


def test_device_error_line_raises_protocol_error_after_retries():
    port = ScriptedPort(echo_or(lambda cmd: "e-[nope]\r\nm-ready\r\n"))
    d = Device("/dev/ttyFAKE1", serial=port, timeout=1.0, retries=2)
    with pytest.raises(ProtocolError, match=r"port /dev/ttyFAKE1: device refused 'timestamp%': nope"):
        d.timestamp()
    assert port.written.count("timestamp") == 3


def test_vanished_port_is_not_retried():
    port = ScriptedPort(echo_or(lambda cmd: "m-ready\r\n"))
    d = Device("/dev/ttyFAKE2", serial=port, timeout=1.0, retries=3)
    d._buf = b""
    port.vanish = True
    with pytest.raises(DeviceError, match=r"port /dev/ttyFAKE2 vanished \(device disconnected\); "
                                          r"last line received: nothing yet"):
        d.name()


def test_loop_url_round_trip():
    """pyserial's loop:// echoes what is written: the line reader splits and strips CR/LF exactly."""
    d = Device("loop://", timeout=1.0)
    d.write("m-one\r\nm-two\n")
    deadline = time.monotonic() + 1
    assert [d.read_line(deadline, "x"), d.read_line(deadline, "x")] == ["m-one", "m-two"]
    d.close()


def test_cannot_open_port():
    with pytest.raises(DeviceError, match=r"cannot open port /dev/does-not-exist-edgedigit"):
        Device("/dev/does-not-exist-edgedigit")


# ---- the same parser behind the emulated Cortex-M4 UART ----------------------------------------------------

@pytest.mark.tool
@pytest.mark.slow
def test_qemu_m4_uart_protocol_and_hostile_line(tmp_path):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    proj = assemble(tmp_path / "qemu", "qemu-m4")
    devices.make(proj)
    elf = proj / "build" / "firmware.elf"
    assert devices.heap_symbols(elf) == []
    sizes = devices.elf_size(elf)
    assert sizes["flash"] == sizes["text"] + sizes["data"] and sizes["ram"] == sizes["data"] + sizes["bss"]
    with devices.start(proj, load_board("qemu-m4")) as running:
        d = devices.open_device(running)
        try:
            assert d.name() == "edgedigit qemu-m4"
            info = d.info()
            assert (info.platform, info.counter_unit, info.model_sha256) == ("qemu-m4", "instructions", SHA)
            assert info.model_crc32 == RUNNER_CRC and info.crc_counter > 0 and info.crc_counter % 40 == 0
            px = image(11)
            r = d.classify(px)
            assert list(r.raw) == expected(px)[1] and r.predicted == expected(px)[0]
            assert r.counter > 0 and r.counter % 40 == 0  # SysTick ticks x 40 instructions
            d._ser.write(bytes(range(1, 256)).replace(b"%", b""))
            d.sync()
            assert raw_exchange(d, "y" * 2000 + "%") == [f"e-[command longer than {7 + 2 * 784} bytes discarded]"]
            assert raw_exchange(d, "db load 4000%") == [
                "e-[db load of 4000 bytes exceeds the model's input of 784 bytes]"]
            d.load(px, frame_bytes=31)
            res = d.infer(2, 1)
            assert res.results == tuple((v + 128) * 0.5 for v in expected(px)[1])
        finally:
            d.close()


@pytest.mark.tool
def test_heap_check_finds_malloc(tmp_path):
    gcc = require_tool("arm-none-eabi-gcc")
    import subprocess

    src = tmp_path / "m.c"
    src.write_text("#include <stdlib.h>\nint main(void) { return malloc(4) != 0; }\n")
    elf = tmp_path / "m.elf"
    subprocess.run([gcc, "-mcpu=cortex-m4", "-mthumb", "--specs=nosys.specs", str(src), "-o", str(elf)], check=True)
    assert "malloc" in devices.heap_symbols(elf)


def test_board_without_run_table_is_refused():
    from edgedigit.core.errors import BoardError

    with pytest.raises(BoardError, match=r"board esp32dev cannot be started here \(no \[run\] in .*esp32dev.toml\); "
                                         r"connect the board and pass --port"):
        devices.run_spec(load_board("esp32dev"))


def test_64_bit_decimals_without_64_bit_division(tmp_path):
    """put_u64 (counters, sizes, CRC costs) prints every uint64 as Python does, and the protocol compiled for the
    Cortex-M4 calls no 64-bit division routine (that would add ~0.7 KB to every firmware)."""
    import re
    import subprocess

    from edgedigit.core.paths import templates_dir

    cc = require_tool("cc")
    src = (templates_dir() / "runtime" / "edgedigit_protocol.c").read_text()
    body = re.search(r"^static void put_u64\(uint64_t v\) \{.*?^\}", src, re.S | re.M).group(0)
    values = [0, 1, 9, 10, 99, 65535, 65536, 2**32 - 1, 2**32, 2**48 - 1, 2**48, 10**19 - 1, 10**19, 2**64 - 1]
    values += [int(v) for v in np.random.default_rng(0).integers(0, 2**63, 200, dtype=np.int64)] + [2**63 + 12345]
    (tmp_path / "t.c").write_text(
        "#include <stdint.h>\n#include <stdio.h>\nstatic void put(const char *s) { fputs(s, stdout); }\n" + body +
        "\nstatic const uint64_t k_v[] = {" + ", ".join(f"{v}ull" for v in values) + "};\n"
        "int main(void) { for (unsigned i = 0; i < sizeof k_v / sizeof k_v[0]; i++) { put_u64(k_v[i]); puts(\"\"); }"
        " return 0; }\n")
    subprocess.run([cc, "-O2", "-o", str(tmp_path / "t"), str(tmp_path / "t.c")], check=True)
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(v) for v in values]
    gcc = require_tool("arm-none-eabi-gcc")
    obj = tmp_path / "p.o"
    inc = templates_dir() / "runtime"
    subprocess.run([gcc, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-std=c99",
                    "-I", str(inc), "-c", str(inc / "edgedigit_protocol.c"), "-o", str(obj)], check=True)
    undefined = subprocess.run([require_tool("arm-none-eabi-nm"), "-u", str(obj)], capture_output=True, text=True,
                               check=True).stdout
    assert "__aeabi_uldivmod" not in undefined and "__aeabi_ldivmod" not in undefined
