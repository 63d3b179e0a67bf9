"""Board files: the shipped ones load and say what they must; bad files are refused naming file and field."""

from __future__ import annotations

import shutil

import pytest

from edgedigit.core.errors import BoardError
from edgedigit.core.paths import boards_dir
from edgedigit.targets.boards import list_boards, load_board, load_board_file


def test_shipped_boards_load_with_expected_ids_and_backends():
    boards = {b.id: b for b in list_boards()}
    assert set(boards) == {"esp32dev", "esp32-s3", "nano33ble", "uno", "host", "qemu-m4"}
    assert boards["esp32dev"].backends == ("tflm", "native", "linear")
    assert boards["nano33ble"].backends == ("tflm", "native", "linear")
    assert boards["uno"].backends == ("native", "linear")
    assert boards["host"].backends == ("native", "linear")
    assert boards["qemu-m4"].backends == ("native", "linear")
    assert boards["uno"].flash_bytes == 32_256 and boards["uno"].ram_bytes == 2_048
    assert "32-bit" in boards["uno"].why_not("tflm")
    assert boards["esp32dev"].counter.unit == "cycles" and "CCOUNT" in boards["esp32dev"].counter.name
    assert boards["nano33ble"].counter.name == "DWT_CYCCNT"
    assert boards["qemu-m4"].counter.unit == "instructions"
    assert boards["host"].counter.unit == "ns"
    for b in boards.values():
        for backend in b.backends:
            assert b.runtime[backend].flash > 0
        if b.build == "platformio":
            assert b.platformio is not None and b.platform == "arduino"
            # pinned: an exact version or a commit, never a floating range
            assert "@ ^" not in b.platformio.platform and "@ ~" not in b.platformio.platform
            for dep in b.platformio.lib_deps:
                assert "#" in dep or "@ " in dep


def test_boards_built_here_list_their_tools():
    assert load_board("qemu-m4").tools == {"make": "make", "arm-none-eabi-gcc": "gcc-arm-none-eabi"}
    assert load_board("host").tools == {"make": "make", "cc": "gcc"}
    assert load_board("esp32dev").tools == {}  # PlatformIO brings its own toolchains


def test_tflm_library_facts():
    esp, nano = load_board("esp32"), load_board("nano33ble")
    assert esp.tflm.per_channel_fully_connected is True
    assert nano.tflm.per_channel_fully_connected is False
    assert nano.tflm.include == "TensorFlowLite.h"
    for b in (esp, nano):
        assert {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX", "RESHAPE"} <= b.tflm.ops
    assert "BATCH_MATMUL" in esp.tflm.ops and "BATCH_MATMUL" not in nano.tflm.ops


def test_aliases_resolve():
    assert load_board("esp32").id == "esp32dev"
    assert load_board("esp32s3").id == "esp32-s3"
    assert load_board("esp32-s3").id == "esp32-s3"


def test_unknown_board_lists_ids_and_aliases():
    with pytest.raises(BoardError) as e:
        load_board("esp8266")
    msg = str(e.value)
    assert "unknown board 'esp8266'" in msg
    assert "esp32dev (esp32)" in msg and "esp32-s3 (esp32s3)" in msg and "uno" in msg and "qemu-m4" in msg


@pytest.fixture
def board_copy(tmp_path):
    d = tmp_path / "boards"
    d.mkdir()
    shutil.copy(boards_dir() / "esp32dev.toml", d / "esp32dev.toml")
    return d / "esp32dev.toml"


@pytest.mark.parametrize(
    "old, new, phrase",
    [
        ("clock_hz = 240_000_000\n", "", "missing field 'clock_hz'"),
        ("clock_hz = 240_000_000\n", "clock_hz = 240_000_000\nclok = 1\n", "unknown field 'clok'"),
        ("board = \"esp32dev\"\n", "board = \"esp32dev\"\nbaord = \"x\"\n", "unknown field [platformio] 'baord'"),
        ("monitor_speed = 115_200\n", "", "missing field [platformio] 'monitor_speed'"),
        ("ram_bytes = 327_680", "ram_bytes = \"lots\"", "field 'ram_bytes' must be a non-negative integer"),
        ("per_channel_fully_connected = true", "per_channel_fully_connected = 1",
         "field [tflm] 'per_channel_fully_connected' must be true or false"),
        ("backends = [\"tflm\", \"native\", \"linear\"]", "backends = [\"tflm\", \"cuda\"]",
         "field 'backends' has unknown backend 'cuda'"),
        ("[runtime.linear]\nflash = 265_000\nram = 21_000\n", "[runtime.linear]\nflash = 265_000\n",
         "missing field [runtime.linear] 'ram'"),
        ("clock_hz = 240_000_000\n", "clock_hz = = 1\n", "not valid TOML"),
        ("[serial]\n", "[tools]\nxtensa-gcc = 1\n\n[serial]\n",
         "field [tools] 'xtensa-gcc' must name the Debian package that provides it"),
    ],
)
def test_bad_board_file_names_file_and_field(board_copy, old, new, phrase):
    text = board_copy.read_text()
    assert old in text
    board_copy.write_text(text.replace(old, new, 1))
    with pytest.raises(BoardError) as e:
        load_board_file(board_copy)
    assert str(board_copy) in str(e.value)
    assert phrase in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_tflm_table_when_backend_listed(board_copy):
    text = board_copy.read_text()
    start = text.index("[tflm]")
    end = text.index("[runtime.tflm]")
    board_copy.write_text(text[:start] + text[end:])
    with pytest.raises(BoardError, match=r"missing field '\[tflm\]'"):
        load_board_file(board_copy)


def test_duplicate_alias_refused(board_copy):
    other = board_copy.with_name("esp32b.toml")
    other.write_text(board_copy.read_text())
    with pytest.raises(BoardError, match="board name .esp32. is already used by esp32b"):
        list_boards(board_copy.parent)


def test_backend_names_come_from_the_registry():
    """boards.BACKENDS is the backend registry's names; each backend runs one kind of model."""
    from edgedigit.core.store import KINDS
    from edgedigit.targets import backends, boards

    assert boards.BACKENDS == tuple(backends.BACKENDS) == ("tflm", "native", "linear")
    for name, backend in backends.BACKENDS.items():
        assert backend.name == name and backend.kind in KINDS
    assert backends.default_backend(load_board("esp32"), "neural") == "tflm"
    assert backends.default_backend(load_board("uno"), "neural") == "native"
    assert backends.default_backend(load_board("uno"), "linear") == "linear"
