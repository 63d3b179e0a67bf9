"""``edgedigit select``: the most accurate variant that fits, on synthetic cards and boards."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from edgedigit.core.errors import BoardError, EdgeDigitError, ModelTooLargeError, NotTrainedError

REPO_BOARDS = __import__("pathlib").Path(__file__).resolve().parents[1] / "boards"


def _board(folder, board_id, flash, ram):
    """A board file like qemu-m4 (backends native + linear) with the given limits."""
    text = (REPO_BOARDS / "qemu-m4.toml").read_text()
    text = re.sub(r"(?m)^flash_bytes = .*$", f"flash_bytes = {flash}", text)
    text = re.sub(r"(?m)^ram_bytes = .*$", f"ram_bytes = {ram}", text)
    text = re.sub(r"(?m)^aliases = .*$", "aliases = []", text)
    (folder / f"{board_id}.toml").write_text(text)


def _card(build, name, kind, acc, size):
    folder = build / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(json.dumps({"variant": name, "kind": kind, "int8_accuracy": acc,
                                                  "size_bytes": size}))
    return folder


@pytest.fixture
def synthetic(build_dir, tflite_models, tmp_path):
    """Four trained variants: big (100 KB MLP, 97 %), small (CNN, 95 %), lin (fixed-point LR, 90 %),
    raw (trained, never quantized); and a boards folder to add synthetic boards to."""
    import shutil

    from edgedigit.models.rfe import FixedPointLR

    for name, model, acc in (("big", "mlp_pertensor", 0.97), ("small", "cnn", 0.95)):
        folder = _card(build_dir, name, "neural", acc, tflite_models[model].stat().st_size)
        shutil.copy(tflite_models[model], folder / "model_int8.tflite")
    rng = np.random.default_rng(0)
    fx = FixedPointLR(np.sort(rng.choice(784, 100, replace=False)).astype(np.int32),
                      rng.integers(-127, 128, (10, 100)).astype(np.int8), np.zeros(10, np.int32), 0.01)
    fx.save(_card(build_dir, "lin", "linear", 0.90, fx.table_bytes()) / "model_fixed.npz")
    _card(build_dir, "raw", "neural", None, None)
    boards = tmp_path / "boards"
    boards.mkdir()
    return boards


def _need(boards, name):
    """(flash, ram) the variant needs on a roomy synthetic board (its first fitting backend)."""
    from edgedigit.report.select import judge
    from edgedigit.targets.boards import load_board

    _board(boards, "roomy", 10**8, 10**8)
    c = judge(load_board("roomy", boards), name)
    return c.requirement["flash"], c.requirement["ram"]


def test_roomy_board_gets_the_most_accurate(synthetic):
    from edgedigit.report.select import select

    _board(synthetic, "roomy", 10**8, 10**8)
    sel = select("roomy", boards_directory=synthetic)
    assert sel.chosen.variant == "big" and sel.chosen.backend == "native"
    by = {c.variant: c for c in sel.candidates}
    assert by["small"].eligible and "less accurate than big (95.00 % < 97.00 %)" in by["small"].left_out
    assert by["lin"].backend == "linear" and by["lin"].eligible
    assert not by["raw"].eligible and "edgedigit quantize raw" in by["raw"].left_out
    assert by["big"].left_out is None


def test_flash_limit_is_inclusive_and_excludes_with_numbers(synthetic):
    from edgedigit.report.select import select

    flash, ram = _need(synthetic, "big")
    _board(synthetic, "exact", flash, ram)
    assert select("exact", boards_directory=synthetic).chosen.variant == "big"
    _board(synthetic, "tight", flash - 1, 10**8)
    sel = select("tight", boards_directory=synthetic)
    assert sel.chosen.variant == "small"
    big = next(c for c in sel.candidates if c.variant == "big")
    assert f"{flash:,} B > tight's {flash - 1:,} B flash" in big.left_out and big.left_out.startswith("too large")


def test_ram_limit_excludes(synthetic):
    from edgedigit.report.select import select

    flash_s, ram_s = _need(synthetic, "small")
    flash_l, ram_l = _need(synthetic, "lin")
    assert ram_l < ram_s  # the LR needs no arena
    _board(synthetic, "lowram", 10**8, ram_s - 1)
    sel = select("lowram", boards_directory=synthetic)
    small = next(c for c in sel.candidates if c.variant == "small")
    assert f"B > lowram's {ram_s - 1:,} B RAM" in small.left_out
    assert sel.chosen.variant in ("big", "lin")


def test_min_accuracy_is_satisficing(synthetic):
    from edgedigit.report.select import select

    _board(synthetic, "roomy", 10**8, 10**8)
    flash_b, _ = _need(synthetic, "big")
    _board(synthetic, "mid", flash_b - 1, 10**8)
    sel = select("mid", min_accuracy=0.96, boards_directory=synthetic)
    assert sel.chosen is None
    msg = sel.nothing_fits_message()
    assert msg.startswith(f"no trained variant fits mid ({flash_b - 1:,} B flash, 100,000,000 B RAM) "
                          "with int8 accuracy >= 96.00 %: ")
    assert "small: int8 accuracy 95.00 % < required 96.00 %" in msg
    assert "lin: int8 accuracy 90.00 % < required 96.00 %" in msg
    assert "big: too large" in msg and "raw: variant 'raw' is not quantized" in msg
    assert "\n" not in msg
    assert select("roomy", min_accuracy=0.96, boards_directory=synthetic).chosen.variant == "big"


def test_nothing_fits_raises_with_every_reason(synthetic):
    from edgedigit.report.select import require, select

    _board(synthetic, "speck", 1000, 100)
    sel = select("speck", boards_directory=synthetic)
    assert sel.chosen is None and all(not c.eligible for c in sel.candidates)
    with pytest.raises(ModelTooLargeError, match=r"^no trained variant fits speck \(1,000 B flash, 100 B RAM\): "):
        require(sel)


def test_linear_only_board_takes_the_linear_model(synthetic):
    from edgedigit.report.select import select

    flash_l, ram_l = _need(synthetic, "lin")
    _board(synthetic, "wee", flash_l, ram_l)
    sel = select("wee", boards_directory=synthetic)
    assert sel.chosen.variant == "lin" and sel.chosen.requirement["flash"] == flash_l


def test_ties_go_to_less_flash(synthetic, build_dir):
    from edgedigit.report.select import select

    card = build_dir / "models" / "small" / "card.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), "int8_accuracy": 0.97}))
    _board(synthetic, "roomy", 10**8, 10**8)
    sel = select("roomy", boards_directory=synthetic)
    assert sel.chosen.variant == "small"  # as accurate as big, less flash
    big = next(c for c in sel.candidates if c.variant == "big")
    assert "as accurate as small" in big.left_out


def test_errors(synthetic, build_dir):
    import shutil

    from edgedigit.report.select import parse_min_accuracy, select

    with pytest.raises(BoardError, match="unknown board 'nope'"):
        select("nope", boards_directory=synthetic)
    assert parse_min_accuracy(98.5) == pytest.approx(0.985) and parse_min_accuracy(0.9) == 0.9
    assert parse_min_accuracy(None) is None
    for bad in (0, -1, 101):
        with pytest.raises(EdgeDigitError, match=f"--min-accuracy {bad}"):
            parse_min_accuracy(bad)
    shutil.rmtree(build_dir / "models")
    _board(synthetic, "roomy", 10**8, 10**8)
    with pytest.raises(NotTrainedError, match="no trained variant in .*: run `edgedigit train` first"):
        select("roomy", boards_directory=synthetic)


def test_cli(synthetic, monkeypatch):
    from typer.testing import CliRunner

    import edgedigit.targets.boards
    from edgedigit.cli import app

    monkeypatch.setattr(edgedigit.targets.boards, "boards_dir", lambda: synthetic)
    _board(synthetic, "roomy", 10**8, 10**8)
    _board(synthetic, "speck", 1000, 100)
    runner = CliRunner()
    res = runner.invoke(app, ["select", "--board", "roomy", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["selected"] == "big" and out["backend"] == "native" and out["board"] == "roomy"
    assert {c["variant"] for c in out["candidates"]} == {"big", "small", "lin", "raw"}
    res = runner.invoke(app, ["select", "--board", "roomy", "--min-accuracy", "96"])
    assert res.exit_code == 0, res.output
    assert "selected: big (native) for roomy" in res.stdout
    res = runner.invoke(app, ["select", "--board", "speck"])
    assert res.exit_code == 1
    assert "error: no trained variant fits speck (1,000 B flash, 100 B RAM): " in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output


def test_a_variant_native_cannot_run_is_left_out_of_native_only(build_dir, tanh_model):
    """A variant with TANH (which the native backend lacks) is left out of native with that reason; select
    still chooses for every shipped board, TFLM boards may take it, and export without --variant agrees."""
    from edgedigit.report.select import select
    from edgedigit.targets.boards import list_boards
    from edgedigit.targets.export import export
    from helpers import add_variant

    add_variant(build_dir, "tanh", "neural", 0.99, tanh_model)
    add_variant(build_dir, "rfe-lr", "linear", 0.8)
    why = "operator TANH is not supported by the native backend"
    for board in list_boards():
        sel = select(board.id)
        tanh = next(c for c in sel.candidates if c.variant == "tanh")
        if "native" in board.backends:
            assert why in tanh.backend_problems["native"] and why in tanh.as_dict()["backend_problems"]["native"]
        if "tflm" in board.backends:  # the board's TFLM library provides TANH
            assert (sel.chosen.variant, sel.chosen.backend) == ("tanh", "tflm"), board.id
            assert "tflm" not in tanh.backend_problems
        else:
            assert sel.chosen.variant == "rfe-lr", board.id
            assert not tanh.eligible and why in tanh.left_out, tanh.left_out
            assert tanh.left_out.startswith("no backend of the board runs it (")
        assert export(board.id).model.name == sel.chosen.variant
    with pytest.raises(EdgeDigitError, match=why):
        export("uno", variant="tanh")  # native and linear only (host and qemu-m4 now compile TFLM: they run it)
    assert export("esp32", variant="tanh").backend == "tflm"


def test_ties_are_broken_alike_by_select_and_export(build_dir, tmp_path):
    """Two variants equally accurate: less flash wins, then the first name; export without --variant agrees."""
    from edgedigit.report.select import select
    from edgedigit.targets.boards import load_board
    from edgedigit.targets.export import default_variant, export
    from helpers import TINY, add_variant

    add_variant(build_dir, "lr-b", "linear", 0.9, seed=1)
    add_variant(build_dir, "lr-a", "linear", 0.9, seed=2)  # same table sizes: the name decides
    add_variant(build_dir, "tiny", "neural", 0.9, TINY)  # as accurate, more flash
    sel = select("uno")
    assert sel.chosen.variant == "lr-a"
    assert default_variant(load_board("uno")) == "lr-a" and export("uno").model.name == "lr-a"
    by = {c.variant: c for c in sel.candidates}
    assert "as accurate as lr-a" in by["lr-b"].left_out
    assert export("esp32").model.name == select("esp32").chosen.variant == "lr-a"


def test_a_broken_card_is_one_variants_reason(synthetic, build_dir):
    from edgedigit.report.select import select

    (build_dir / "models" / "raw" / "card.json").write_text("{not json")
    _board(synthetic, "roomy", 10**8, 10**8)
    sel = select("roomy", boards_directory=synthetic)
    raw = next(c for c in sel.candidates if c.variant == "raw")
    assert sel.chosen.variant == "big" and "not a valid card" in raw.left_out
