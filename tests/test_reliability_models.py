"""Bad models through every stage that takes one (issue 7): graph loading, export for each backend (native,
tflm, linear), build, validate and bench device. Each must give exit code 1 and one line naming the file
and the problem, no traceback, and leave nothing in the build tree. A random byte flip can leave a valid
but different model; exporting that one is allowed, and the lock file then records the flipped file's
sha256 (the device handshake compares it, so it never runs unnoticed in place of the real model).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from edgedigit.core.errors import ModelError
from edgedigit.core.fsutil import sha256_file
from edgedigit.core.graph import load_graph
from reliability_cases import Case, convert_wrong_models, judge, linear_cases, model_cases, run_cli

STRUCTURAL = {"empty file", "truncated", "not a flatbuffer"}


@pytest.fixture(scope="session")
def bad_models(tflite_models, tmp_path_factory) -> list[Case]:
    root = tmp_path_factory.mktemp("badmodels")
    wrong = convert_wrong_models(root / "converted", names=("float", "uint8", "tanh"))
    return model_cases(root / "cases", tflite_models["mlp"], wrong, flip_seeds=8)


def _check_all(cases: list[Case], args_for, build: Path, names_for=lambda c: [str(c.path), c.path.name]) -> list:
    """Run the command on every case; return (case, outcome) pairs that exported, after asserting the others."""
    failures, worked = [], []
    for case in cases:
        out = run_cli(args_for(case), build)
        problem = judge(out, case, names_for(case))
        if problem is not None:
            failures.append(f"{case.kind} / {case.label}: {problem}")
        elif out.exit_code == 0:
            worked.append((case, out))
    assert failures == []
    return worked


def test_kinds_of_bad_model_are_all_there(bad_models):
    kinds = {c.kind for c in bad_models}
    assert kinds == STRUCTURAL | {"random byte flips", "float model where int8 is needed", "uint8 input/output",
                                  "op the backend lacks"}
    assert sum(c.kind == "random byte flips" for c in bad_models) == 8


def test_graph_loader_names_file_and_problem(bad_models):
    for case in bad_models:
        if case.kind not in STRUCTURAL | {"random byte flips"}:
            continue
        try:
            load_graph(case.path)
        except ModelError as e:
            assert str(e).startswith(f"{case.path}: "), str(e)
            assert re.search(case.problem, str(e), re.IGNORECASE), str(e)
            assert "\n" not in str(e)
        else:
            assert case.may_work, f"{case.label} loaded"


def test_export_native_refuses_bad_models(bad_models, build_dir):
    worked = _check_all(bad_models, lambda c: ["export", "--board", "host", "--model", c.path, "--backend", "native"],
                        build_dir)
    for case, _ in worked:  # a flip that left a valid model: exported whole, under its own hash
        lock = json.loads((build_dir / "firmware" / "host" / f"{case.path.stem}-native" / "edgedigit.lock.json").read_text())
        assert lock["model"]["sha256"] == sha256_file(case.path)
    assert all(c.kind == "random byte flips" for c, _ in worked)


def test_export_tflm_refuses_bad_models(bad_models, build_dir):
    cases = [c for c in bad_models if c.kind != "op the backend lacks"]  # esp32dev's TFLM has TANH
    worked = _check_all(cases, lambda c: ["export", "--board", "esp32dev", "--model", c.path, "--backend", "tflm"],
                        build_dir)
    assert all(c.kind == "random byte flips" for c, _ in worked)


def test_op_the_native_backend_lacks_is_named(bad_models, build_dir):
    case = next(c for c in bad_models if c.kind == "op the backend lacks")
    out = run_cli(["export", "--board", "qemu-m4", "--model", case.path, "--backend", "native"], build_dir)
    assert out.exit_code == 1 and len(out.stderr) == 1
    assert f"{case.path}: operator TANH is not supported by the native backend" in out.message
    assert not (build_dir / "firmware").exists()


def test_build_refuses_before_make(bad_models, build_dir):
    first = next(c for c in bad_models if c.kind == "truncated")  # the first 2 % of the model's bytes
    cases = [c for c in bad_models if c.kind in ("empty file", "float model where int8 is needed", "uint8 input/output")
             or c is first]
    _check_all(cases, lambda c: ["build", "--board", "host", "--model", c.path], build_dir)
    assert not (build_dir / "firmware").exists()


def test_model_larger_than_the_board(tflite_models, build_dir):
    mlp = tflite_models["mlp"]
    out = run_cli(["export", "--board", "uno", "--model", mlp, "--backend", "native"], build_dir)
    assert out.exit_code == 1 and len(out.stderr) == 1 and not out.traceback
    assert re.search(r"mlp \(native\): [\d,]+ B model .* > uno's 32,256 B flash", out.message), out.message
    assert "trained variant" not in out.message and "fits:" not in out.message  # a file, not one of the variants
    assert not (build_dir / "firmware").exists()


def _variant(build: Path, name: str, kind: str, artifact: str, content: Path) -> Path:
    d = build / "models" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "card.json").write_text(json.dumps({"variant": name, "kind": kind}))
    shutil.copy(content, d / artifact)
    return d / artifact


def test_validate_and_bench_device_on_a_broken_variant(bad_models, build_dir, tmp_path):
    from reliability_cases import _good_arrays, _npz

    data = _npz(tmp_path / "small.npz", **_good_arrays())
    half = [c for c in bad_models if c.kind == "truncated"][2]  # the first half of the model's bytes
    assert half.label.startswith(f"first {half.path.stat().st_size} of "), half.label
    chosen = [c for c in bad_models if c.kind in ("empty file", "float model where int8 is needed", "uint8 input/output")
              or c is half]
    assert len(chosen) == 4
    problems = {"float model where int8 is needed": r"not a full-int8 model \(input float32",
                "uint8 input/output": r"not a full-int8 model \(input uint8"}
    for case in chosen:
        target = _variant(build_dir, "mlp", "neural", "model_int8.tflite", case.path)
        case = Case(case.kind, case.label, target, problems.get(case.kind, case.problem))
        for args in (["validate", "mlp", "--data", data],
                     ["bench", "device", "--board", "host", "--variant", "mlp", "--data", data, "--samples", "2"]):
            out = run_cli(args, build_dir)
            assert judge(out, case, [str(target)]) is None, (args[:2], case.label, out.stderr)
    assert not (build_dir / "firmware").exists() and not (build_dir / "results").exists()


def test_export_linear_refuses_broken_tables(build_dir, tmp_path):
    cases = linear_cases(tmp_path / "fixed")
    for case in cases:
        target = _variant(build_dir, "rfe-lr", "linear", "model_fixed.npz", case.path)
        out = run_cli(["export", "--board", "qemu-m4", "--variant", "rfe-lr", "--backend", "linear"], build_dir)
        assert judge(out, case, [str(target)]) is None, (case.label, out.stderr)
    assert not (build_dir / "firmware").exists()


def test_bench_host_on_a_broken_variant(bad_models, tflite_models, build_dir, tmp_path):
    from reliability_cases import _good_arrays, _npz

    data = _npz(tmp_path / "small.npz", **_good_arrays())
    g = load_graph(tflite_models["mlp"])
    quant = {"input_scale": float(g.input.scale[0]), "input_zero_point": int(g.input.zero_point[0])}
    kinds = STRUCTURAL | {"float model where int8 is needed"}
    chosen = [c for c in bad_models if c.kind in kinds and c == next(d for d in bad_models if d.kind == c.kind)]
    chosen += [c for c in bad_models if c.kind == "random byte flips"][:4]
    for case in chosen:
        target = _variant(build_dir, "mlp", "neural", "model_int8.tflite", case.path)
        card = json.loads((target.parent / "card.json").read_text())
        (target.parent / "card.json").write_text(json.dumps({**card, "quantization": quant}))
        out = run_cli(["bench", "host", "mlp", "--data", data, "--runs", "2", "--warmup", "0", "--limit", "4"],
                      build_dir)
        out.left = [f for f in out.left if not f.startswith("results/bench-host")]  # rows measured before it
        problem = r"not a full-int8 model" if case.kind.startswith("float") else case.problem + "|LiteRT cannot load it"
        assert judge(out, Case(case.kind, case.label, target, problem, case.may_work), [str(target)]) is None, (
            case.label, out.stderr)


def test_validate_and_bench_host_refuse_broken_linear_tables(build_dir, tmp_path):
    from reliability_cases import _good_arrays, _npz

    data = _npz(tmp_path / "small.npz", **_good_arrays())
    cases = [c for c in linear_cases(tmp_path / "fixed") if c.label != "one class"]  # the host runs 1 class
    for case in cases:
        target = _variant(build_dir, "rfe-lr", "linear", "model_fixed.npz", case.path)
        for args in (["validate", "rfe-lr", "--data", data],
                     ["bench", "host", "rfe-lr", "--data", data, "--runs", "2", "--warmup", "0", "--limit", "4"]):
            out = run_cli(args, build_dir)
            out.left = [f for f in out.left if not f.startswith("results/bench-host")]
            assert judge(out, Case(case.kind, case.label, target, case.problem), [str(target)]) is None, (
                args[:2], case.label, out.stderr)


def test_export_never_replaces_a_user_file_or_folder(tflite_models, build_dir, tmp_path):
    mlp = tflite_models["mlp"]
    user_file = tmp_path / "model_copy.tflite"
    user_file.write_bytes(mlp.read_bytes())
    user_dir = tmp_path / "notes"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("precious")
    for out_path in (user_file, user_dir):
        out = run_cli(["export", "--board", "host", "--model", mlp, "--backend", "native", "--out", out_path], build_dir)
        assert out.exit_code == 1 and len(out.stderr) == 1 and not out.traceback
        assert f"{out_path}: exists and is not an edgedigit firmware project (no edgedigit.lock.json)" in out.message
    assert user_file.read_bytes() == mlp.read_bytes() and (user_dir / "notes.txt").read_text() == "precious"
    # no .old copies (the build folder beside them holds only the lock file the refused commands took)
    assert sorted(p.name for p in tmp_path.iterdir() if p != build_dir) == ["model_copy.tflite", "notes"]
    assert [p.name for p in build_dir.iterdir()] == [".edgedigit.lock"]
    project = tmp_path / "proj"
    for _ in range(2):  # an earlier export is replaced whole
        out = run_cli(["export", "--board", "host", "--model", mlp, "--backend", "native", "--out", project], build_dir)
        assert out.exit_code == 0, out.stderr
    assert (project / "edgedigit.lock.json").is_file()


def test_quantize_refuses_a_broken_keras_model(tflite_models, build_dir, tmp_path):
    from reliability_cases import _good_arrays, _npz

    data = _npz(tmp_path / "small.npz", **_good_arrays())
    for label, content in (("empty", b""), ("not a model", b"junk" * 100), ("a .tflite renamed",
                                                                              tflite_models["mlp"].read_bytes())):
        keras_file = build_dir / "models" / "mlp" / "model.keras"
        keras_file.parent.mkdir(parents=True, exist_ok=True)
        (keras_file.parent / "card.json").write_text(json.dumps({"variant": "mlp", "kind": "neural"}))
        keras_file.write_bytes(content)
        out = run_cli(["quantize", "mlp", "--data", data, "--calibration-samples", "10"], build_dir)
        case = Case("broken model.keras", label, keras_file, r"not a readable Keras model")
        assert judge(out, case, [str(keras_file)]) is None, (label, out.stderr)
    assert not (build_dir / "models" / "mlp" / "model_int8.tflite").exists()
