"""A hostile serial line against real firmware (issue 7), beyond the per-command cases of test_protocol.py:
random sessions of commands, garbage, over-long and broken frames sent in one go to the host firmware (pty)
and to the qemu-m4 firmware (emulated UART): every '%' is answered by exactly one ``m-ready``, the firmware
keeps running and answers the next valid command with the right result. On the host side, a port that
vanishes in the middle of an ``infer`` gives one error naming the port and the last line received.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import require_tool
from edgedigit.core.errors import DeviceError
from edgedigit.targets import devices
from edgedigit.targets.boards import load_board
from helpers import assemble, expected, image

PIECES = [
    b"name%", b"profile%", b"timestamp%", b"help%", b"ed-info%", b"results%", b"ed-echo ok1%", b"%", b"   %",
    b"\r\n", b"db load 784%", b"db load 785%", b"db load 0%", b"db load 4%", b"db 0102%", b"db 123%", b"db 12g4%",
    b"db z1%", b"infer 2 1%", b"infer 0%", b"infer 1 2 3%", b"infer 999999999 0%", b"ed-run%", b"ed-run zff%",
    b"ed-run zq0%", b"ed-run z%", b"a b c d e%", b"bogus%", b"na\x01me%", b"x" * 1700 + b"%",
]


def hostile_session(rng: np.random.Generator) -> bytes:
    """A random mix of valid commands, broken frames and raw garbage (with and without '%')."""
    parts = []
    for _ in range(int(rng.integers(5, 25))):
        r = rng.random()
        if r < 0.6:
            parts.append(PIECES[int(rng.integers(len(PIECES)))])
        elif r < 0.8:
            parts.append(bytes(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8)))
        else:  # a valid image load, sometimes cut short by the next piece
            px = image(int(rng.integers(1000)))
            hexed = b"db " + px.hex().encode() + b"%"
            parts.append(b"db load 784%" + (hexed if rng.random() < 0.5 else hexed[: int(rng.integers(3, 200))]))
    return b"".join(parts)


def replay(d, data: bytes, timeout: float = 30.0) -> list[str]:
    """Send ``data`` in one go; return every line up to the m-ready that answers its last '%'."""
    d._ser.write(data)
    deadline = time.monotonic() + timeout
    lines, ready = [], 0
    while ready < data.count(b"%"):
        line = d.read_line(deadline, f"m-ready {ready + 1} of {data.count(b'%')}")
        ready += line == "m-ready"
        lines.append(line)
    return lines


def run_sessions(d, running, n: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    answered = 0
    for _ in range(n):
        data = hostile_session(rng)
        lines = replay(d, data)
        assert all(ln.startswith(("m-", "e-")) for ln in lines if ln), lines
        answered += data.count(b"%")
        d.write("%")  # end whatever partial frame the session left (garbage after its last '%')
        deadline = time.monotonic() + 10
        while (line := d.read_line(deadline, "the closing m-ready")) != "m-ready":
            assert line.startswith(("e-[", "m-")), line  # the leftover garbage, run as one command
        # exactly one m-ready per '%': a stray extra one would come before the echo
        d.write("ed-echo chk%")
        assert [d.read_line(deadline, "echo"), d.read_line(deadline, "echo")] == ["m-ed-echo-[chk]", "m-ready"]
        assert running.alive()
        assert d.name().startswith("edgedigit ")
        px = image(int(rng.integers(1000)))
        assert list(d.classify(px).raw) == expected(px)[1]
    return answered


@pytest.fixture(scope="module")
def host_firmware(tmp_path_factory):
    require_tool("cc")
    proj = assemble(tmp_path_factory.mktemp("hostile") / "host", "host")
    devices.make(proj)
    return proj


def test_random_hostile_sessions_host(host_firmware):
    with devices.start(host_firmware, load_board("host")) as running:
        d = devices.open_device(running)
        try:
            assert run_sessions(d, running, n=25, seed=1) > 100
        finally:
            d.close()


def test_port_vanishing_mid_infer_names_port_and_last_line(host_firmware):
    with devices.start(host_firmware, load_board("host")) as running:
        d = devices.open_device(running)
        try:
            d.load(image(3))
            timer = threading.Timer(1.0, running.kill)
            timer.start()
            t0 = time.monotonic()
            with pytest.raises(DeviceError) as err:
                d.infer(100_000_000, 0)  # minutes of work: the port goes away long before it ends
            timer.join()
        finally:
            d.close()
    msg = str(err.value)
    assert msg.startswith(f"port {running.url} vanished"), msg
    assert msg.endswith("last line received: 'm-infer-start-100000000'"), msg
    assert "\n" not in msg
    assert time.monotonic() - t0 < 15  # reported when it happened, not after the infer timeout


@pytest.mark.tool
@pytest.mark.slow
def test_random_hostile_sessions_and_slow_sender_qemu_m4(tmp_path):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    proj = assemble(tmp_path / "qemu", "qemu-m4")
    devices.make(proj)
    with devices.start(proj, load_board("qemu-m4")) as running:
        d = devices.open_device(running)
        try:
            assert run_sessions(d, running, n=6, seed=2) > 20
            for ch in b"ed-echo slow1%":  # a very slow sender: 0.1 s between bytes (the frame timeout is 2 s)
                d._ser.write(bytes([ch]))
                time.sleep(0.1)
            deadline = time.monotonic() + 10
            assert [d.read_line(deadline, "slow"), d.read_line(deadline, "slow")] == ["m-ed-echo-[slow1]", "m-ready"]
        finally:
            d.close()


def test_zero_heap_check_works_on_host_binaries(host_firmware, tmp_path):
    """The long run's heap check (nm) must see malloc in a dynamically linked host binary too, where nm prints
    versioned imports ("U malloc@GLIBC_2.2.5"), and must find none in the host firmware."""
    import subprocess

    cc = require_tool("cc")
    src = tmp_path / "m.c"
    src.write_text("#include <stdlib.h>\nint main(void) { void *p = malloc(4); free(p); return p == 0; }\n")
    subprocess.run([cc, str(src), "-o", str(tmp_path / "m")], check=True)
    assert devices.heap_symbols(tmp_path / "m", "nm") == ["free", "malloc"]
    assert devices.heap_symbols(host_firmware / load_board("host").run["binary"], "nm") == []
