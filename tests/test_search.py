"""edgedigit search: the study on Optuna's SQLite storage with trials on a local Ray, interrupted and resumed;
pruning before training; two processes on one study; promotion to a variant that exports and validates.

Small and quick: trials of one epoch on 500 training images. One local Ray (2 CPUs) serves the whole module.
The latency figures of these tests come from stand-in cost coefficients (:data:`COST`); the calibration on
the emulated Cortex-M4 has its own test.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import require_tool

COEFFICIENTS = {"conv_macs": 1.0, "conv_in1_macs": 2.0, "pointwise_macs": 1.0, "depthwise_macs": 2.0, "fc_macs": 1.2,
                "pool_reads": 3.0, "elements": 5.0, "ops": 300.0, "constant": 5000.0}
TRAIN_IMAGES = 500
BOARD = "nano33ble"
MLP_TOO_BIG = {"architecture": {"family": "mlp", "layers": [256, 256], "dropout": 0.0},
               "training": {"epochs": 1, "lr": 0.003, "augment": False, "teacher": None}, "granularity": "per-tensor"}
SMALL_CONV = {"architecture": {"family": "conv", "stages": [{"width": 4, "kernel": 3, "separable": False},
                                                            {"width": 8, "kernel": 5, "separable": True}],
                               "pool": "avg", "head": "gap", "dropout": 0.1},
              "training": {"epochs": 1, "lr": 0.003, "augment": True, "teacher": None}, "granularity": "per-tensor"}


def _cost():
    from edgedigit.search.cost import CostModel

    return CostModel(dict(COEFFICIENTS), "stand-in")


@pytest.fixture(scope="module")
def data():
    """MNIST's first 500 training images when EDGEDIGIT_DATA is set (CI), else the embedded fallback's."""
    from edgedigit.models.data import load_dataset, load_fallback

    ds = load_dataset(os.environ["EDGEDIGIT_DATA"]) if os.environ.get("EDGEDIGIT_DATA") else load_fallback()
    return ds.subset(train=TRAIN_IMAGES, test=200)


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the module (2 CPUs); yields its address for other processes to attach to."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _config(**kw):
    from edgedigit.search.runner import SearchConfig

    return SearchConfig(**{"board": BOARD, "trials": 4, "max_epochs": 1, "baselines": False, "verify": False,
                           "seed": 0, **kw})


def _study(build, name=f"edgedigit-{BOARD}"):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{build / 'search' / BOARD / 'study.db'}")


@pytest.fixture(scope="module")
def resumed(ray_cluster, data, tmp_path_factory):
    """A 4-trial search interrupted (Ctrl-C) after 2 finished trials, then run again to 4."""
    import optuna

    build = tmp_path_factory.mktemp("search") / "build"
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEDIGIT_BUILD", str(build))
    from edgedigit.search.runner import run_search

    seen = []

    def stop_after_two(number, line):
        seen.append(number)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(_config(), data, cost=_cost(), on_result=stop_after_two)
    first = {t.number: (t.state, t.values, t.datetime_complete, t.params) for t in _study(build).trials}
    summary = run_search(_config(), data, cost=_cost())
    final = {t.number: t for t in _study(build).trials}
    mp.undo()
    return {"build": build, "seen": seen, "first": first, "summary": summary, "final": final,
            "finished": (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)}


@pytest.mark.slow
def test_interrupted_search_resumes_to_four_without_repeating(resumed):
    from optuna.trial import TrialState

    first, final, finished = resumed["first"], resumed["final"], resumed["finished"]
    done_first = sorted(n for n, (state, *_) in first.items() if state in finished)
    assert done_first == sorted(resumed["seen"])  # exactly the two finished trials were kept
    interrupted = [n for n, (state, *_) in first.items() if state == TrialState.FAIL]
    assert interrupted and all(final[n].user_attrs["interrupted"] for n in interrupted)
    assert resumed["summary"]["evaluated_this_run"] == 2  # the second run ran only what was missing
    assert sum(t.state in finished for t in final.values()) == 4
    for n in done_first:  # the finished trials are the same records, not re-run
        assert (final[n].state, final[n].values, final[n].datetime_complete, final[n].params) == first[n]
    for n in interrupted:  # an interrupted trial is run again with its parameters
        retry = [t for t in final.values() if t.user_attrs.get("retry_of") == n]
        assert len(retry) == 1 and retry[0].params == first[n][3] and retry[0].state in finished
    lines = [json.loads(s) for s in (resumed["build"] / "search" / BOARD / "trials.jsonl").read_text().splitlines()]
    told = [ln["number"] for ln in lines if ln["state"] in ("COMPLETE", "PRUNED")]
    assert sorted(told) == sorted(n for n, t in final.items() if t.state in finished)  # each trial told once


@pytest.mark.slow
def test_front_is_written_with_each_trials_figures(resumed):
    summary, final = resumed["summary"], resumed["final"]
    saved = json.loads((resumed["build"] / "search" / BOARD / "pareto.json").read_text())
    assert saved["front"] == json.loads(json.dumps(summary["front"]))
    assert saved["objectives"] == ["accuracy", "latency", "flash"] and saved["counts"]["complete"] >= 1
    assert summary["front"]
    for row in summary["front"]:
        t = final[row["trial"]]
        assert t.values == [row["accuracy"], row["instructions"], row["flash"]]
        assert 0.0 <= row["accuracy"] <= 1.0 and row["validation_images"] == TRAIN_IMAGES // 5  # never the test set
        # nano33ble tflm: its runtime figures, and the 784-byte input image the budget counts as I/O RAM
        from edgedigit.targets.boards import load_board

        rt = load_board("nano33ble").runtime["tflm"]  # the board file's measured TFLM runtime
        assert row["flash"] == row["model_flash"] + rt.flash and row["ram"] == row["arena"] + 784 + rt.ram
        assert os.path.isfile(row["model"])


def test_trial_over_the_budget_is_pruned_before_training(data, monkeypatch, tmp_path):
    """The Uno cannot hold a 256-256 MLP: the trial stops with export's figures and nothing is trained."""
    from edgedigit.core.graph import load_graph
    from edgedigit.models import zoo
    from edgedigit.models.quantize import calibration_images, convert_int8
    from edgedigit.search.trial import evaluate
    from edgedigit.targets.backends import BACKENDS, ModelSource
    from edgedigit.targets.boards import load_board

    trained = []
    monkeypatch.setattr(zoo, "fit", lambda *a, **k: trained.append("fit"))
    monkeypatch.setattr(zoo, "distill", lambda *a, **k: trained.append("distill"))
    r = evaluate(MLP_TOO_BIG, board="uno", dataset=data, seed=0, cost=COEFFICIENTS)
    assert r["status"] == "pruned" and trained == [] and "tflite" not in r and "accuracy" not in r
    assert r["backend"] == "native" and r["flash"] > 32_256 and r["ram"] > 2_048
    assert r["reason"].startswith("uno: too large") and "flash" in r["reason"]
    # the figures are the export budget's for this model (sizes depend on shapes, not on the weights)
    from edgedigit.models.variants.searched import MODEL_NAME
    from edgedigit.search.trial import shape_twin

    model = shape_twin(zoo.build_from_spec(MLP_TOO_BIG["architecture"], MODEL_NAME), 0)  # the name is in the flatbuffer
    p = tmp_path / "m.tflite"
    p.write_bytes(convert_int8(model, calibration_images(data, 100, 0)))
    g = load_graph(p)
    req = BACKENDS["native"].requirement(load_board("uno"), ModelSource("m", "neural", p, g.sha256, "m", None, g))
    assert (r["flash"], r["ram"], r["size_bytes"]) == (req.flash, req.ram, g.size_bytes)


def test_trial_over_max_latency_is_pruned_before_training(data, monkeypatch):
    from edgedigit.models import zoo
    from edgedigit.search.trial import evaluate

    trained = []
    monkeypatch.setattr(zoo, "fit", lambda *a, **k: trained.append("fit"))
    r = evaluate(SMALL_CONV, board=BOARD, dataset=data, seed=0, cost=COEFFICIENTS, max_latency=1000)
    assert r["status"] == "pruned" and trained == [] and r["fits"] is True
    assert r["instructions"] > 1000 and "--max-latency" in r["reason"]


def test_the_budget_model_has_the_bytes_of_the_trained_model(data):
    """A fresh conv net's zero biases and batch-norm statistics are identical constants, which the converter
    stores once; the trial's budget conversion (shape_twin) has the bytes of the model after training."""
    from edgedigit.models import zoo
    from edgedigit.models.quantize import calibration_images, convert_int8
    from edgedigit.models.variants.searched import MODEL_NAME
    from edgedigit.search.trial import shape_twin

    arch = {"family": "conv", "stages": [{"width": 16, "kernel": 3, "separable": False, "depth": 1},
                                         {"width": 16, "kernel": 5, "separable": True, "depth": 2}],
            "pool": "avg", "head": "flatten", "dropout": 0.1}
    cal = calibration_images(data, 50, 0)
    fresh = len(convert_int8(zoo.build_from_spec(arch, MODEL_NAME), cal, "per-tensor"))
    twin = len(convert_int8(shape_twin(zoo.build_from_spec(arch, MODEL_NAME), 0), cal, "per-tensor"))
    model = zoo.build_from_spec(arch, MODEL_NAME)
    zoo.fit(model, data.x_train[:300], data.y_train[:300], epochs=1, seed=0, augment=False, callbacks=[])
    assert twin == len(convert_int8(model, cal, "per-tensor")) > fresh


def test_trial_over_max_model_bytes_is_pruned_before_training(data, monkeypatch):
    """The size bound is exact before training: the untrained model converts to the trained one's bytes."""
    from edgedigit.models import zoo
    from edgedigit.search.trial import evaluate

    trained = []
    monkeypatch.setattr(zoo, "fit", lambda *a, **k: trained.append("fit"))
    r = evaluate(SMALL_CONV, board=BOARD, dataset=data, seed=0, cost=None, max_model_bytes=2000)
    assert r["status"] == "pruned" and trained == [] and r["fits"] is True and r["size_bytes"] > 2000
    assert r["reason"] == f"model {r['size_bytes']:,} B > --max-model-bytes 2,000"


@pytest.mark.slow
def test_two_processes_share_one_study(ray_cluster, data, tmp_path):
    """Two `edgedigit search` processes on the same storage (and the module's Ray, as a cluster) fill one study."""
    import time

    from edgedigit.core.fsutil import write_json
    from edgedigit.search.cost import CostModel, cache_key

    build = tmp_path / "build"
    write_json(build / "search" / "cost_model.json", CostModel(dict(COEFFICIENTS), cache_key()).as_dict())
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "EDGEDIGIT_BUILD": str(build)}
    cmd = [sys.executable, "-c", "from edgedigit.cli import main; main()", "search", "--board", BOARD, "--trials", "4",
           "--max-epochs", "1", "--train-limit", str(TRAIN_IMAGES), "--no-baselines", "--no-verify", "--parallel", "1",
           "--storage", storage, "--ray-address", ray_cluster, "--json"]
    a = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    b = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=900) for p in (a, b)]
    assert [p.returncode for p in (a, b)] == [0, 0], [o[1][-2000:] for o in outs]
    import optuna

    study = optuna.load_study(study_name=f"edgedigit-{BOARD}", storage=storage)
    runners = {t.user_attrs["runner"].rsplit(":", 1)[1] for t in study.trials}
    assert runners == {str(a.pid), str(b.pid)}  # both processes ran trials of the one study
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) >= 4 and len({t.number for t in study.trials}) == len(study.trials)
    fronts = [json.loads(o[0]) for o in outs]
    assert fronts[0]["study"] == fronts[1]["study"]


@pytest.mark.slow
def test_promote_makes_a_variant_that_exports_and_validates(resumed, data, monkeypatch):
    from edgedigit.measure.validate import validate_variants
    from edgedigit.search.promote import promote
    from edgedigit.targets.export import export

    monkeypatch.setenv("EDGEDIGIT_BUILD", str(resumed["build"]))
    n = resumed["summary"]["front"][0]["trial"]
    card = promote(BOARD, n, data, seeds=3, calibration_samples=100, verify=False)
    name = f"search-{BOARD}-{n}"
    assert card["variant"] == name and card["spec"] == resumed["final"][n].user_attrs["spec"]
    s = card["seeds"]
    assert s["seeds"] == [0, 1, 2] and len(s["int8_accuracy"]) == 3 and card["int8_accuracy"] == s["int8_accuracy"][0]
    assert s["int8_accuracy_min"] == min(s["int8_accuracy"])
    assert s["int8_accuracy_mean"] == pytest.approx(float(np.mean(s["int8_accuracy"])))
    assert card["search"]["trial"] == n and card["search"]["study"] == f"edgedigit-{BOARD}"
    assert card["size_bytes"] == resumed["final"][n].user_attrs["size_bytes"]  # the bytes the search judged
    assert card["dataset"]["test"] == len(data.y_test)
    # a new process finds the variant through the registry
    out = subprocess.run([sys.executable, "-c", f"from edgedigit.models.variants import get_variant; "
                          f"print(get_variant('{name}').summary)"], env={**os.environ}, capture_output=True, text=True)
    assert out.returncode == 0 and f"trial {n}" in out.stdout
    res = export(BOARD, variant=name)
    assert res.model.name == name and (res.path / "edgedigit.lock.json").is_file()
    summary = validate_variants([name], data, limit=50)
    v = summary["variants"][name]
    assert set(v["quantized"]) >= {"litert-ref", "tflm"}
    assert v["agreement"]["tflm"]["prediction_agreement"] == 1.0


def test_promoted_registry_entries(build_dir):
    from edgedigit.core.errors import ModelError, UnknownVariantError
    from edgedigit.models.variants import REGISTRY, get_variant, resolve

    folder = build_dir / "search" / "promoted"
    folder.mkdir(parents=True)
    (folder / "search-qemu-m4-7.json").write_text(json.dumps({"name": "search-qemu-m4-7", "spec": SMALL_CONV}))
    v = get_variant("search-qemu-m4-7")
    assert v.kind == "neural" and v.requires == () and v.quantize is not None
    assert [x.name for x in resolve(None)] == [*(n for n, x in REGISTRY.items() if not x.on_demand), "search-qemu-m4-7"]
    with pytest.raises(UnknownVariantError, match="search-qemu-m4-7"):
        get_variant("search-qemu-m4-8")
    (folder / "search-qemu-m4-9.json").write_text(json.dumps({"name": "search-qemu-m4-9", "spec": {"training": {}}}))
    with pytest.raises(ModelError, match="search-qemu-m4-9.json"):
        get_variant("search-qemu-m4-7")


def test_spec_architectures_convert_to_the_ops_every_backend_runs(tmp_path):
    from edgedigit.core.graph import load_graph
    from edgedigit.models import zoo
    from edgedigit.models.quantize import convert_int8
    from edgedigit.models.train import count_macs
    from edgedigit.search.cost import features

    model = zoo.build_from_spec(SMALL_CONV["architecture"])
    p = tmp_path / "m.tflite"
    p.write_bytes(convert_int8(model, np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)))
    g = load_graph(p)
    assert [op.opcode for op in g.ops] == ["RESHAPE", "CONV_2D", "AVERAGE_POOL_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
                                           "AVERAGE_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"]
    f = features(g)
    assert f["conv_in1_macs"] == 28 * 28 * 4 * 9 and f["depthwise_macs"] == 14 * 14 * 4 * 25
    assert f["pointwise_macs"] == 14 * 14 * 8 * 4 and f["fc_macs"] == 8 * 10 and f["ops"] == 9
    assert f["conv_in1_macs"] + f["depthwise_macs"] + f["pointwise_macs"] + f["fc_macs"] == count_macs(model)


def test_a_stage_of_depth_two_is_two_convolutions_before_its_pool(tmp_path):
    """``depth`` 2: two convolutions (the second with batch norm, folded) before the pool; MACs follow."""
    from edgedigit.core.errors import ModelError
    from edgedigit.core.graph import load_graph
    from edgedigit.models import zoo
    from edgedigit.models.quantize import convert_int8
    from edgedigit.models.train import count_macs

    arch = {"family": "conv", "stages": [{"width": 4, "kernel": 3, "separable": False, "depth": 2},
                                         {"width": 6, "kernel": 3, "separable": True, "depth": 2}],
            "pool": "max", "head": "flatten", "dropout": 0.0}
    model = zoo.build_from_spec(arch, "two_deep")
    assert model.name == "two_deep"  # the name goes into the flatbuffer, so into the model's bytes
    from tf_keras import layers

    convs = [(type(layer).__name__, layer.name) for layer in model.layers
             if isinstance(layer, (layers.Conv2D, layers.SeparableConv2D))]
    assert convs == [("Conv2D", "conv1"), ("Conv2D", "conv1_2"), ("SeparableConv2D", "conv2"),
                     ("SeparableConv2D", "conv2_2")]
    assert count_macs(model) == (28 * 28 * 4 * 9 + 28 * 28 * 4 * 4 * 9  # conv1, conv1_2
                                 + 14 * 14 * 4 * 9 + 14 * 14 * 6 * 4  # separable conv2: depthwise + 1x1
                                 + 14 * 14 * 6 * 9 + 14 * 14 * 6 * 6  # separable conv2_2
                                 + 7 * 7 * 6 * 10)
    p = tmp_path / "m.tflite"
    p.write_bytes(convert_int8(model, np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)))
    assert [op.opcode for op in load_graph(p).ops] == [
        "RESHAPE", "CONV_2D", "CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
        "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert zoo.describe(arch) == "conv 4k3x2-s6k3x2 max flatten drop0"
    with pytest.raises(ModelError, match="conv stage 1 depth 3: expected one of 1, 2"):
        zoo.build_from_spec({**arch, "stages": [{"width": 4, "kernel": 3, "depth": 3}]})


def test_a_search_bounded_by_time_only_starts_guiding_after_a_few_trials():
    """Not after 20 random draws (NSGA-II's largest population), which is all an hour of trials completes."""
    from edgedigit.search.runner import DEFAULT_TRIALS, UNBOUNDED, make_sampler

    three = ("accuracy", "latency", "flash")
    assert make_sampler(three, 0, UNBOUNDED)._population_size == 5 == make_sampler(three, 0, DEFAULT_TRIALS)._population_size
    assert make_sampler(three, 0, 200)._population_size == 20 and make_sampler(three, 0, 8)._population_size == 4
    tpe = make_sampler(("accuracy",), 0, UNBOUNDED)
    assert tpe._n_startup_trials == 6 and tpe._constant_liar


def test_epochs_are_drawn_between_min_and_max_and_run_whole():
    import optuna

    from edgedigit.search.space import Space, suggest

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [suggest(study.ask(), Space(min_epochs=5, max_epochs=7))["training"] for _ in range(30)]
    assert {t["epochs"] for t in drawn} == {5, 6, 7} and all(t["patience"] == t["epochs"] for t in drawn)


def test_a_searched_spec_runs_its_whole_schedule_unless_it_says_otherwise(data):
    """``training.patience`` is the early stopping's; a spec without one keeps the zoo's (3), as earlier studies."""
    from edgedigit.models.variants import TrainContext
    from edgedigit.models.variants.searched import make_variant

    small = data.subset(train=300)
    runs = {}
    for patience in (5, None):
        training = {**SMALL_CONV["training"], "epochs": 5, "augment": False}
        if patience:
            training["patience"] = patience
        spec = {**SMALL_CONV, "training": training}
        info = make_variant("trial", spec).train(TrainContext(dataset=small, seed=0)).extras["training"]
        runs[patience] = info
    assert runs[5]["epochs_run"] == 5 and len(runs[5]["val_accuracy"]) == 5
    assert runs[5]["early_stopping"] == "val_accuracy, patience 5, best weights restored"
    assert runs[None]["early_stopping"] == "val_accuracy, patience 3, best weights restored"


def test_cost_fit_recovers_known_weights():
    from edgedigit.search.cost import FEATURES, fit

    rng = np.random.default_rng(0)
    truth = dict(zip(FEATURES, rng.uniform(0.5, 5.0, len(FEATURES)), strict=True))
    points = []
    for _ in range(20):
        feats = {k: float(rng.integers(1, 10**6)) for k in FEATURES}
        feats["constant"] = 1.0
        points.append({"features": feats, "measured": sum(truth[k] * v for k, v in feats.items())})
    got = fit(points)
    assert got == pytest.approx(truth, rel=1e-6)


@pytest.mark.slow
@pytest.mark.tool
def test_calibration_runs_on_the_emulator_and_is_cached(build_dir, monkeypatch):
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from edgedigit.runtimes import native_host
    from edgedigit.search import cost

    model = cost.load_or_calibrate(count=3)
    saved = json.loads((build_dir / "search" / "cost_model.json").read_text())
    assert saved["key"] == cost.cache_key() and len(saved["points"]) == 3
    assert [p["name"] for p in saved["points"]] == ["cal00", "cal01", "cal02"]
    assert all(p["measured"] > 1000 for p in saved["points"])  # instructions per inference, from QEMU
    assert saved["coefficients"] == model.coefficients

    def no_emulator(*a, **k):
        raise AssertionError("recalibrated although the cache is current")

    monkeypatch.setattr(native_host, "run_qemu_m4", no_emulator)
    assert cost.load_or_calibrate(count=3).coefficients == model.coefficients
    monkeypatch.setattr(cost, "cache_key", lambda: "kernels changed")
    with pytest.raises(AssertionError, match="recalibrated"):
        cost.load_or_calibrate(count=3)


def test_cli_errors_are_one_line(build_dir):
    from typer.testing import CliRunner

    from edgedigit.cli import app

    r = CliRunner().invoke(app, ["search"])
    assert r.exit_code == 1 and "needs --board" in r.output
    r = CliRunner().invoke(app, ["search", "--board", BOARD, "--objectives", "accuracy,speed"])
    assert r.exit_code == 1 and "--objectives accuracy,speed" in r.output
    r = CliRunner().invoke(app, ["search", "--board", BOARD, "--min-epochs", "9", "--max-epochs", "8"])
    assert r.exit_code == 1 and r.output.strip().endswith("--min-epochs 9: expected 1 to --max-epochs (8)")
    r = CliRunner().invoke(app, ["search", "promote", "3", "--board", BOARD])
    assert r.exit_code == 1 and "no search study for nano33ble" in r.output
    r = CliRunner().invoke(app, ["search", "--board", BOARD, "--family", "cnn"])
    assert r.exit_code == 1 and r.output.strip().endswith("--family cnn: give one or more of conv, mlp separated by commas")
    r = CliRunner().invoke(app, ["search", "--board", "uno", "--family", "conv"])
    assert r.exit_code == 1 and "--family conv: uno has 2,048 B of RAM, less than a conv net's first activation" in r.output
    assert not (build_dir / "search").exists()  # refused before any study or calibration is written


def test_family_keeps_the_search_to_one_architecture_family():
    """``--family conv``: every draw is a conv net and the shipped baselines still run first; ``--family mlp``:
    MLPs only, no conv baselines."""
    import optuna

    from edgedigit.core.errors import EdgeDigitError
    from edgedigit.search.space import baseline_params, for_board, parse_families, suggest
    from edgedigit.targets.boards import load_board

    assert parse_families("mlp, conv") == ("conv", "mlp") and parse_families(["conv"]) == ("conv",)
    for bad in ("", ",", "conv,rnn"):
        with pytest.raises(EdgeDigitError, match="give one or more of conv, mlp"):
            parse_families(bad)
    for family in ("conv", "mlp"):
        space = for_board(load_board(BOARD), families=(family,), max_epochs=2)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        drawn = {suggest(study.ask(), space)["architecture"]["family"] for _ in range(12)}
        assert space.families == (family,) and drawn == {family}
        assert len(baseline_params(space)) == (2 if family == "conv" else 0)


def test_baselines_get_the_best_training_the_space_allows():
    """The shipped cnn and tiny enter a study with max epochs and the zoo's learning rate; tiny distils as its
    recipe does; the architecture is the shipped one (three 3x3 stages, widths w, 2w, 4w)."""
    import optuna

    from edgedigit.search.space import Space, baseline_params, suggest

    specs = [suggest(optuna.trial.FixedTrial(p), Space(max_epochs=7, teacher="cnn"))
             for p in baseline_params(Space(max_epochs=7, teacher="cnn"))]
    assert [[s["width"] for s in spec["architecture"]["stages"]] for spec in specs] == [[16, 32, 64], [8, 16, 32]]
    assert {s["depth"] for spec in specs for s in spec["architecture"]["stages"]} == {1}
    assert [spec["training"]["patience"] for spec in specs] == [7, 7]  # the whole schedule runs
    assert [spec["architecture"]["dropout"] for spec in specs] == [0.2, 0.0]
    assert [(t["epochs"], t["lr"], t["augment"], t["teacher"]) for t in (spec["training"] for spec in specs)] == \
        [(7, 0.003, True, None), (7, 0.003, True, "cnn")]
    # without a teacher nothing is distilled, and without a space the training is left to the sampler
    no_teacher = [suggest(optuna.trial.FixedTrial(p), Space(max_epochs=3)) for p in baseline_params(Space(max_epochs=3))]
    assert [spec["training"]["teacher"] for spec in no_teacher] == [None, None]
    assert all("epochs" not in p and "lr" not in p for p in baseline_params())


UNO_MLP = {"architecture": {"family": "mlp", "layers": [24], "downsample": 2, "dropout": 0.0},
           "training": {"epochs": 1, "lr": 0.003, "augment": False, "teacher": None}, "granularity": "per-tensor"}


def test_the_uno_space_holds_downsampled_mlps_and_no_latency(data, build_dir):
    """On the Uno: MLPs only (a conv net's first activation alone exceeds 2 KB), widths whose first layer fits
    the flash on the 14 x 14 image, no conv baselines, and no latency objective (no Cortex-M4 figure)."""
    import optuna

    from edgedigit.core.errors import EdgeDigitError
    from edgedigit.search.runner import default_objectives, run_search
    from edgedigit.search.space import MLP_WIDTHS, baseline_params, for_board, suggest
    from edgedigit.targets.boards import load_board

    uno = for_board(load_board("uno"))
    room = 32_256 - load_board("uno").runtime["native"].flash
    assert uno.families == ("mlp",) and uno.mlp_widths == tuple(w for w in MLP_WIDTHS if 196 * w <= room)
    assert uno.mlp_widths == (8, 12, 16, 24, 32, 48) and baseline_params(uno) == []
    nano = for_board(load_board(BOARD))
    assert nano.families == ("conv", "mlp") and nano.mlp_widths == MLP_WIDTHS and len(baseline_params(nano)) == 2
    params = {"family": "mlp", "downsample": 2, "depth": 2, "units1": 24, "units2": 8, "dropout": 0.1, "epochs": 1,
              "lr": 0.003, "augment": False}
    spec = suggest(optuna.trial.FixedTrial(params), uno)
    assert spec["architecture"] == {"family": "mlp", "layers": [24, 8], "downsample": 2, "dropout": 0.1}
    with pytest.raises(ValueError):  # a width the Uno's space does not offer
        suggest(optuna.trial.FixedTrial({**params, "units1": 64}), uno)
    assert default_objectives(load_board("uno")) == ("accuracy", "flash")
    assert default_objectives(load_board(BOARD)) == ("accuracy", "latency", "flash")
    for kw in ({"objectives": ("accuracy", "latency")}, {"objectives": ("accuracy",), "max_latency": 1e6}):
        with pytest.raises(EdgeDigitError, match=r"uno \(ATmega328P \(8-bit AVR\)\) is no 32-bit core"):
            run_search(_config(board="uno", **kw), data)


def test_a_downsampled_mlp_trial_fits_the_uno(data, tmp_path):
    """The 2x2 average pool converts to AVERAGE_POOL_2D, which the native backend runs; the trial completes
    on the Uno with export's figures: the image held in the arena (no separate input buffer), tables in flash."""
    from edgedigit.core.graph import load_graph
    from edgedigit.models import zoo
    from edgedigit.models.quantize import convert_int8
    from edgedigit.search.trial import evaluate
    from edgedigit.targets.boards import load_board

    model = zoo.build_from_spec(UNO_MLP["architecture"])
    p = tmp_path / "m.tflite"
    p.write_bytes(convert_int8(model, np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)))
    g = load_graph(p)
    assert [op.opcode for op in g.ops] == ["RESHAPE", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
                                           "FULLY_CONNECTED", "SOFTMAX"]
    assert g.tensors[g.ops[3].inputs[1]].shape == (24, 196) and zoo.describe(UNO_MLP["architecture"]) == \
        "mlp avg2 24 drop0"
    r = evaluate(UNO_MLP, board="uno", dataset=data, seed=0, cost=None)
    rt = load_board("uno").runtime["native"]
    assert r["status"] == "complete" and r["backend"] == "native" and r["instructions"] is None
    assert r["flash"] == r["model_flash"] + rt.flash <= 32_256
    assert r["ram"] == r["arena"] + rt.ram <= 2_048 and r["arena"] >= 784 + 196
    assert r["model_flash"] > 196 * 24 + 24 * 10 and 0.0 <= r["accuracy"] <= 1.0
