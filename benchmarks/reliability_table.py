"""The reliability table (issue 7): every bad input category through every command that takes it, with the
behaviour observed, written to ``docs/reliability.md``.

    nice .venv/bin/python benchmarks/reliability_table.py [--out docs/reliability.md] [--flip-seeds 20]

Bad models (tests/reliability_cases.py) go through graph loading, ``export`` (native, tflm, linear),
``build``, ``validate``, ``bench device`` and ``bench host``; bad datasets through ``data`` and ``train``;
a hostile serial line is played against the host firmware (the protocol with a stand-in model runner) and
the host side of the protocol. For each row: how many variants were tried, the exit codes seen, how many
gave one error line naming the file and the problem, tracebacks, files left behind, and one example
message. Everything runs in a temporary folder; nothing is read from or written to ./build. Deterministic
(fixed seeds). Exit code 1 if any variant misbehaved (traceback, wrong exit code, unnamed file, leftovers).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import reliability_cases as rc  # noqa: E402
from edgedigit.core.store import CARD, FIXED_FILE, INT8_FILE  # noqa: E402


class Table:
    """Rows keyed by (section, kind, command), each accumulating the outcomes of its variants."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], dict] = {}
        self.bad = 0

    def add(self, section: str, kind: str, command: str, outcome: rc.Outcome, verdict: str | None,
            case: rc.Case | None = None) -> None:
        row = self.rows.setdefault((section, kind, command), {"n": 0, "codes": set(), "clean": 0, "worked": 0,
                                                               "tb": 0, "left": 0, "bad": [], "example": ""})
        row["n"] += 1
        row["codes"].add(outcome.exit_code)
        row["tb"] += outcome.traceback
        row["left"] += bool(outcome.left) and outcome.exit_code != 0  # an accepted export is whole, not left
        if verdict is None and outcome.exit_code == 0:
            row["worked"] += 1
        elif verdict is None:
            row["clean"] += 1
        else:
            row["bad"].append(f"{case.label if case else ''}: {verdict}")
            self.bad += 1
        if outcome.exit_code != 0 and not row["example"]:
            row["example"] = _short(outcome.message)

    def markdown(self, section: str) -> list[str]:
        out = ["| bad input | command | variants | exit codes | one clean line (file + problem) | accepted | "
               "tracebacks | left behind | example message |", "|---|---|---|---|---|---|---|---|---|"]
        for (sec, kind, command), r in self.rows.items():
            if sec != section:
                continue
            codes = ", ".join(str(c) for c in sorted(r["codes"]))
            out.append(f"| {kind} | `{command}` | {r['n']} | {codes} | {r['clean']} | {r['worked']} | {r['tb']} | "
                       f"{r['left']} | {r['example'].replace('|', '/')} |")
        return out


def _short(message: str) -> str:
    m = re.sub(r"/\S*/(tmp\w*|build)/", "…/", message)
    m = re.sub(r"/tmp/\S+?/([^/\s]+)", r"…/\1", m)
    return m[:180] + ("…" if len(m) > 180 else "")


def models_section(table: Table, root: Path, flip_seeds: int) -> None:
    from edgedigit.core.errors import ModelError
    from edgedigit.core.graph import load_graph
    from tflite_factory import build_all

    good = build_all(_mk(root / "good"))
    wrong = rc.convert_wrong_models(root / "converted")
    cases = rc.model_cases(root / "cases", good["mlp"], wrong, flip_seeds=flip_seeds)
    data = rc._npz(root / "small.npz", **rc._good_arrays())
    g = load_graph(good["mlp"])  # the card a quantized variant has (bench host reads the input scale there)
    card = {"quantization": {"input_scale": float(g.input.scale[0]), "input_zero_point": int(g.input.zero_point[0]),
                             "output_scale": float(g.output.scale[0]), "output_zero_point": int(g.output.zero_point[0])}}
    for case in cases:
        if case.kind not in ("float model where int8 is needed", "uint8 input/output", "op the backend lacks"):
            try:
                load_graph(case.path)
                out = rc.Outcome(0, [], "", False)
            except ModelError as e:
                out = rc.Outcome(1, [f"error: {e}"], "", False)
            table.add("models", case.kind, "load_graph(path)", out, rc.judge(out, case, [str(case.path)]), case)
        commands = [("export --board host --backend native", ["export", "--board", "host", "--backend", "native"]),
                    ("export --board esp32dev --backend tflm", ["export", "--board", "esp32dev", "--backend", "tflm"]),
                    ("build --board host", ["build", "--board", "host"])]
        for name, args in commands:
            if case.kind == "op the backend lacks" and "tflm" in name:
                continue  # every board's TFLM library has TANH: exporting it is right
            if name.startswith("build") and case.kind == "random byte flips":
                continue  # a flip that survives export would start a C build: export rows cover flips
            build = root / "build"
            out = rc.run_cli([*args, "--model", case.path], build)
            table.add("models", case.kind, name + " --model M", out, rc.judge(out, case, [str(case.path)]), case)
            shutil.rmtree(build, ignore_errors=True)
        build = root / "build"
        target = build / "models" / "mlp" / INT8_FILE
        problems = {"float model where int8 is needed": r"not a full-int8", "uint8 input/output": r"not a full-int8"}
        vcase = rc.Case(case.kind, case.label, target, problems.get(case.kind, case.problem), case.may_work)
        for name, args in (("validate mlp", ["validate", "mlp", "--data", data]),
                           ("bench device --board host --variant mlp",
                            ["bench", "device", "--board", "host", "--variant", "mlp", "--data", data, "--samples", "2"]),
                           ("bench host mlp", ["bench", "host", "mlp", "--data", data, "--runs", "2", "--warmup", "0",
                                               "--limit", "4"])):
            if case.kind == "random byte flips" and not name.startswith("bench host"):
                continue
            _variant(build, "mlp", "neural", INT8_FILE, case.path, card)
            if name == "validate mlp":  # validate reads the float model first: give it a real one
                _copy_keras(root, build)
            out = rc.run_cli(args, build)
            if name.startswith("bench host"):
                verdict = _bench_host_outcome(out, vcase)
            else:
                verdict = rc.judge(out, vcase, [str(target)])
            table.add("models", case.kind, name + " (M as the variant's model_int8.tflite)", out, verdict, case)
            shutil.rmtree(build, ignore_errors=True)
    for label, content in (("empty", b""), ("not a model", b"junk" * 100), ("a .tflite renamed", good["mlp"].read_bytes())):
        build = root / "build"
        keras_file = _variant(build, "mlp", "neural", "model.keras", good["mlp"])
        keras_file.write_bytes(content)
        kcase = rc.Case("broken model.keras", label, keras_file, r"not a readable Keras model")
        out = rc.run_cli(["quantize", "mlp", "--data", data, "--calibration-samples", "10"], build)
        table.add("models", kcase.kind, "quantize mlp (M as the variant's model.keras)", out,
                  rc.judge(out, kcase, [str(keras_file)]), kcase)
        shutil.rmtree(build, ignore_errors=True)
    out = rc.run_cli(["export", "--board", "uno", "--model", good["mlp"], "--backend", "native"], root / "build")
    big = rc.Case("model larger than the board", "mlp (32-unit) on uno", good["mlp"], r"> uno's [\d,]+ B flash")
    table.add("models", big.kind, "export --board uno --backend native --model M", out,
              rc.judge(out, big, [good["mlp"].stem]), big)
    shutil.rmtree(root / "build", ignore_errors=True)
    for case in rc.linear_cases(root / "fixed"):
        build = root / "build"
        target = _variant(build, "rfe-lr", "linear", FIXED_FILE, case.path)
        lcase = rc.Case(case.kind, case.label, target, case.problem)
        for name, args in (("export --board qemu-m4 --backend linear", ["export", "--board", "qemu-m4", "--variant",
                                                                        "rfe-lr", "--backend", "linear"]),
                           ("validate rfe-lr", ["validate", "rfe-lr", "--data", data]),
                           ("bench host rfe-lr", ["bench", "host", "rfe-lr", "--data", data, "--runs", "2",
                                                  "--warmup", "0", "--limit", "4"])):
            if case.label == "one class" and not name.startswith("export"):
                continue  # a one-class model runs on the host; only the firmware (2..16 classes) refuses it
            _variant(build, "rfe-lr", "linear", FIXED_FILE, case.path)
            out = rc.run_cli(args, build)
            verdict = _bench_host_outcome(out, lcase) if name.startswith("bench") else rc.judge(out, lcase, [str(target)])
            table.add("models", f"rfe-lr tables: {case.label}", f"{name} (M as model_fixed.npz)", out, verdict, case)
            shutil.rmtree(build, ignore_errors=True)


_KERAS: dict[str, Path] = {}


def _copy_keras(root: Path, build: Path) -> None:
    """A tiny float model.keras for validate (so it reaches the int8 file)."""
    if "path" not in _KERAS:
        import tf_keras as keras
        from tf_keras import layers as L

        m = keras.Sequential([L.Flatten(batch_input_shape=(1, 28, 28)), L.Dense(10)])
        _KERAS["path"] = root / "float.keras"
        m.save(_KERAS["path"])
    shutil.copy(_KERAS["path"], build / "models" / "mlp" / "model.keras")


def _bench_host_outcome(out: rc.Outcome, case: rc.Case) -> str | None:
    """bench host appends each runtime's result as it arrives (contract 7): rows written before the broken
    model was reached are results, not half-written output."""
    out.left = [f for f in out.left if not f.startswith("results/bench-host")]
    return rc.judge(out, case, [str(case.path)])


def _variant(build: Path, name: str, kind: str, artifact: str, content: Path, card: dict | None = None) -> Path:
    d = build / "models" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / CARD).write_text(json.dumps({"variant": name, "kind": kind, **(card or {})}))
    shutil.copy(content, d / artifact)
    return d / artifact


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def outputs_section(table: Table, root: Path) -> None:
    """Output paths that hold a user's file or folder: never replaced."""
    from tflite_factory import build_all

    good = build_all(_mk(root / "good_out"))["mlp"]
    build = root / "build"
    _variant(build, "mlp", "neural", INT8_FILE, good)
    def user_file(p: Path) -> Path:
        p.write_text("precious")
        return p

    def user_folder(p: Path) -> Path:
        (_mk(p) / "notes.txt").write_text("precious")
        return p

    for kind, make in (("--out is an existing file", user_file), ("--out is a folder of the user's", user_folder)):
        for name, args in (("export --board host --backend native --model M --out O",
                            ["export", "--board", "host", "--backend", "native", "--model", good]),
                           ("report --out O", ["report"])):
            target = make(root / f"user-{len(table.rows)}")
            out = rc.run_cli([*args, "--out", target], build)
            kept = (target.read_text() if target.is_file() else (target / "notes.txt").read_text()) == "precious"
            case = rc.Case(kind, kind, target, r"exists and is not an edgedigit")
            verdict = rc.judge(out, case, [str(target)]) or (None if kept else "the user's data was replaced")
            table.add("outputs", kind, name, out, verdict, case)


def data_section(table: Table, root: Path) -> None:
    for case in rc.data_cases(root / "data"):
        for name, args in (("data --data D", ["data"]), ("train mlp --data D", ["train", "mlp", "--epochs", "1"])):
            build = root / "build"
            out = rc.run_cli([*args, "--data", case.path], build)
            table.add("data", case.kind, name, out, rc.judge(out, case, [str(case.path)]), case)
            shutil.rmtree(build, ignore_errors=True)


def serial_section(root: Path) -> list[str]:
    """Play each hostile-line category against the host firmware; one row per category."""
    from edgedigit.core.errors import DeviceError, SerialTimeoutError
    from edgedigit.targets import devices
    from edgedigit.targets.boards import load_board
    from edgedigit.targets.protocol import Device
    from helpers import assemble, expected, image

    proj = assemble(root / "fw", "host")
    devices.make(proj)
    rows = ["| hostile line | variants | device answer (first variant) | next valid command | firmware alive |",
            "|---|---|---|---|---|"]

    def raw(d: Device, data: bytes, timeout: float = 10.0) -> list[str]:
        """Send ``data``; the lines answering its last command (after one m-ready per earlier '%')."""
        d._ser.write(data)
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        for _ in range(data.count(b"%")):
            lines = []
            while (line := d.read_line(deadline, "m-ready")) != "m-ready":
                lines.append(line)
        return lines

    with devices.start(proj, load_board("host")) as running:
        d = devices.open_device(running)

        def check_next() -> bool:
            px = image(5)
            return d.name() == "edgedigit host" and list(d.classify(px).raw) == expected(px)[1]

        def row(what: str, variants: list[bytes], pause: float = 0.0) -> None:
            answers, nexts = [], 0
            for v in variants:
                if pause:
                    d._ser.write(v)
                    time.sleep(pause)
                    answers.append(raw(d, b"%"))
                else:
                    answers.append(raw(d, v))
                d.sync()
                nexts += check_next()
            first = "; ".join(answers[0]) or "(only m-ready)"
            rows.append(f"| {what} | {len(variants)} | {first[:150]} | {nexts}/{len(variants)} answered right | "
                        f"{'yes' if running.alive() else 'NO'} |")

        import numpy as np

        rng = np.random.default_rng(0)
        garbage = [bytes(rng.integers(0, 256, 300, dtype=np.uint8)).replace(b"%", b"") + b"%" for _ in range(20)]
        row("random garbage between commands", garbage)
        row("command longer than the buffer", [b"x" * n + b"%" for n in (1576, 1577, 5000, 20000)])
        row("db load larger than the buffer", [b"db load 785%", b"db load 4000%", b"db load 99999999999%"])
        row("hex with odd length", [b"db load 784%db 123%", b"ed-run z%", b"ed-run 0%"])
        row("non-hex characters", [b"db load 784%db 12g4%", b"ed-run zq0%", b"db load 4%db xx%"])
        row("non-printable bytes in a command", [b"na\x01me%", b"\xffinfer 1%"])
        row("a frame cut in the middle (2.3 s of silence, then '%')", [b"db load 78", b"ed-run 0a0b"], pause=2.3)
        t0 = time.monotonic()
        for ch in b"ed-echo slow%":
            d._ser.write(bytes([ch]))
            time.sleep(0.15)
        deadline = time.monotonic() + 5
        slow = [d.read_line(deadline, "slow"), d.read_line(deadline, "slow")]
        rows.append(f"| a very slow sender (0.15 s per byte, {time.monotonic() - t0:.1f} s per command) | 1 | "
                    f"{'; '.join(slow)} | {'1/1 answered right' if check_next() else 'NO'} | "
                    f"{'yes' if running.alive() else 'NO'} |")
        # silence: the firmware stops answering (SIGSTOP), the host side times out naming port and last line
        running.process.send_signal(signal.SIGSTOP)
        d.timeout, d.retries = 1.0, 1
        try:
            d.name()
            silence = "no error"
        except SerialTimeoutError as e:
            silence = _short(str(e))
        running.process.send_signal(signal.SIGCONT)
        d.sync()
        rows.append(f"| silence (firmware stopped; host side, 1 retry) | 1 | host: `{silence}` | "
                    f"{'1/1 answered right' if check_next() else 'NO'} after it resumes | yes |")
        d.load(image(3))
        killer = time.monotonic()
        import threading

        threading.Timer(1.0, running.kill).start()
        try:
            d.infer(100_000_000, 0)
            vanished = "no error"
        except DeviceError as e:
            vanished = _short(str(e))
        rows.append(f"| the port vanishing mid-run (process killed during infer) | 1 | host: `{vanished}` "
                    f"after {time.monotonic() - killer:.1f} s | (device gone) | no (killed) |")
        d.close()
    return rows


def figures(long_run: Path | None, fuzz_log: Path | None) -> list[str]:
    """The long-run and fuzzing figures, quoted from their outputs when given."""
    out: list[str] = []
    runs = sorted(long_run.glob("long_run-*.json")) if long_run else []
    if runs:
        out += ["## Long runs (`benchmarks/long_run.py`)", "",
                "| board | inferences (infer batches) | streamed, identical to TFLM | protocol errors | heap symbols | "
                "static RAM / arena / protocol bytes | per-inference time first -> last (drift) | ed-run counter "
                "first -> last (drift) | process RSS before -> after | wall |", "|---|---|---|---|---|---|---|---|---|---|"]
        for f in runs:
            s = json.loads(f.read_text())
            m, c, k = s["memory"], s["device_clock_per_inference_us"], s["ed_run_counter_fixed_image"]
            out.append(f"| {s['board']} | {s['inferences']:,} ({s['infer_batches']}) | {s['streamed']:,}, "
                       f"{s['streamed_identical_to_tflm']:,} | {s['protocol_errors']} | {m['heap_symbols'] or 'none'} | "
                       f"{m['static_ram_bytes']:,} / {m['arena_bytes']:,} / {m['protocol_bytes']:,} | "
                       f"{c['first']:.1f} -> {c['last']:.1f} us ({c['drift_percent']:+.2f} %) | {k['first']:,} -> "
                       f"{k['last']:,} {k['unit']} ({k['drift_percent']:+.2f} %) | {m['process_rss_before']:,} -> "
                       f"{m['process_rss_after']:,} B ({m['process']}) | {s['wall_seconds']:.0f} s |")
        out += ["", "Model: " + ", ".join(sorted({json.loads(f.read_text())['model_sha256'][:16] for f in runs})) +
                "…; dataset: the MNIST test set. The host board shares 2 CPU cores with other jobs, so its time",
                "drift is scheduling noise; qemu-m4's clock is the emulated instruction count (deterministic).", ""]
    if fuzz_log and fuzz_log.is_file():
        text = fuzz_log.read_text(errors="replace")
        execs = re.search(r"stat::number_of_executed_units: (\d+)", text)
        done = re.search(r"Done (\d+) runs in (\d+) second", text)
        cov = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)", text)
        crashed = "ERROR:" in text or "runtime error" in text
        if execs and done:
            out += ["## Fuzzing (`benchmarks/fuzz_protocol.sh`)", "",
                    f"{int(execs.group(1)):,} executions in {done.group(2)} s, "
                    f"{'a CRASH or sanitizer report' if crashed else 'no crash and no sanitizer report'}; "
                    f"final coverage {cov[-1][0]} edges, {cov[-1][1]} features, corpus {cov[-1][2]} inputs "
                    "(libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer, clang 14, on a shared 2-core machine).",
                    ""]
    return out


SCRIPTS = [
    "| script | what it runs | section of this page |",
    "|---|---|---|",
    "| `benchmarks/reliability_table.py` | bad models, bad data, output paths holding a user's data, a hostile serial "
    "line | Bad models ... A hostile serial line |",
    "| `benchmarks/long_run.py` | 100,000 inferences on host and qemu-m4 | Long runs |",
    "| `benchmarks/fuzz_protocol.sh` | libFuzzer on the device-side protocol parser | Fuzzing |",
    "| `benchmarks/reliability_interrupt.py` | kills at random moments, two writers at once, a moved build, full and "
    "read-only file systems, an edited generated file (issue 15) | Interruption, concurrency, moves, full and "
    "read-only disks |",
]
KEPT = ("<!-- reliability_interrupt:start -->", "<!-- reliability_interrupt:end -->")


def kept_sections(page: Path) -> list[str]:
    """The section another script wrote into the page (between its markers), kept as it is."""
    text = page.read_text() if page.is_file() else ""
    if KEPT[0] not in text or KEPT[1] not in text:
        return []
    block = KEPT[0] + text.split(KEPT[0], 1)[1].split(KEPT[1], 1)[0] + KEPT[1]
    return [*block.splitlines(), ""]


def main(argv: list[str] | None = None) -> int:
    """Build the table, write the doc; exit code 1 if any variant misbehaved."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "reliability.md")
    p.add_argument("--flip-seeds", type=int, default=20)
    p.add_argument("--long-run", type=Path, default=None,
                   help="results folder holding long_run-<board>.json (benchmarks/long_run.py) to quote")
    p.add_argument("--fuzz-log", type=Path, default=None, help="output of benchmarks/fuzz_protocol.sh to quote")
    args = p.parse_args(argv)
    table = Table()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgedigit-reliability-") as tmp:
        root = Path(tmp)
        models_section(table, root, args.flip_seeds)
        data_section(table, root)
        outputs_section(table, root)
        serial = serial_section(root)
    from edgedigit.core.fsutil import write_atomic

    variants = defaultdict(int)
    for (sec, _, _), r in table.rows.items():
        variants[sec] += r["n"]
    lines = [
        "# Reliability: bad inputs and what edgedigit does with them",
        "",
        "Generated by `benchmarks/reliability_table.py` (re-run it to refresh this page; deterministic inputs,",
        "everything in a temporary folder). Tests: `tests/test_reliability_*.py`. The bar (issue 7): exit code 1,",
        "one line naming the file or port and the problem, no traceback, nothing half-written.",
        "",
        "Re-run: `nice .venv/bin/python benchmarks/reliability_table.py [--long-run build/results]",
        "[--fuzz-log fuzz.log]`; the figures quoted at the end come from",
        "`nice .venv/bin/python benchmarks/long_run.py` (100,000 inferences on host and qemu-m4) and",
        "`sh benchmarks/fuzz_protocol.sh 600 > fuzz.log 2>&1` (10 minutes of libFuzzer on the protocol parser).",
        "",
        *SCRIPTS,
        "",
        f"Variants run: {variants['models']} bad-model, {variants['data']} bad-data; misbehaving: **{table.bad}**.",
        "Columns: *one clean line* = exit 1, a single stderr line naming the file and the problem, nothing left",
        "behind; *accepted* = exit 0, which is right only for byte flips that leave a valid (different) model:",
        "then the export's `edgedigit.lock.json` records the flipped file's sha256 and the device handshake",
        "(`ed-info` model hash vs the host file) refuses it later; a .tflite has no checksum, so it cannot be",
        "told apart from a real model before that.",
        "",
        "## Bad models",
        "",
        *table.markdown("models"),
        "",
        "`bench host` appends each runtime's row to `bench-host.jsonl` as it is measured (contract 7), so the",
        "rows measured before a broken model file stopped it stay on disk; they are not counted as left behind.",
        "*Left behind* counts failed commands that left any file in the build tree.",
        "",
        "## Bad data",
        "",
        *table.markdown("data"),
        "",
        "## Output paths holding a user's data",
        "",
        *table.markdown("outputs"),
        "",
        "## A hostile serial line (host firmware, protocol with a stand-in model runner)",
        "",
        *serial,
        "",
        "The device-side parser is also fuzzed (libFuzzer + ASan + UBSan, `benchmarks/fuzz_protocol.sh`; a",
        "20-second run in CI in `tests/test_reliability_fuzz.py`) and played random hostile sessions on the",
        "host and qemu-m4 firmware (`tests/test_reliability_serial.py`); the host side's parsers get random",
        "and malformed device answers from hypothesis (`tests/test_reliability_hostside.py`).",
        "",
    ]
    lines += figures(args.long_run, args.fuzz_log)
    lines += kept_sections(args.out)
    bad_rows = [(k, r["bad"]) for k, r in table.rows.items() if r["bad"]]
    if bad_rows:
        lines += ["## Misbehaviour found", ""] + [f"- {k[1]} / `{k[2]}`: {b}" for k, bs in bad_rows for b in bs] + [""]
    lines.append(f"_{time.strftime('%Y-%m-%d', time.gmtime())}, {time.monotonic() - t0:.0f} s._")
    write_atomic(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}: {variants['models']} bad-model and {variants['data']} bad-data variants, "
          f"{len(serial) - 2} hostile-line rows; misbehaving: {table.bad}")
    for k, bs in bad_rows:
        for b in bs:
            print(f"  {k[1]} / {k[2]}: {b}")
    return 1 if table.bad else 0


if __name__ == "__main__":
    sys.exit(main())
