"""``edgedigit report``: one markdown page from what was measured, with plots; nothing invented.

Reads the cards (``build/models/*/card.json``), the host benchmark (``results/bench-host.jsonl``), the
stress test (``results/stress.jsonl``), the device runs (``results/device-*.jsonl``), the backend
comparisons (``results/compare-<board>.json``: native vs TFLM firmwares on an emulated board, which
leads the comparison section; ``results/compare.json``: the host callgrind comparison) and the boards.
For every record file the LAST record per (variant, runtime) or (board, variant) wins, so re-running one
measurement updates its row.
Anything not measured appears as ``missing`` with the command that would measure it.

Writes ``build/reports/report.md`` and its PNG plots in one step (``fsutil.staged_dir``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..core.errors import EdgeDigitError
from ..core.fsutil import staged_dir
from ..core.paths import SEARCH_FRONT, models_dir, reports_dir, results_dir, search_dir
from ..core.results import BENCH_HOST, COMPARE, COMPARE_BOARD_PREFIX, DEVICE_PREFIX, STRESS, ResultFile, read_jsonl
from ..core.stage import Stage, files_hashes
from ..core.store import ModelFolder
from ..runtimes import deployed_order
from . import plots

REPORT_FILE = "report.md"

DEPLOYED_ORDER = deployed_order()  # the runtimes whose figures stand for a deployed model, best first
MISSING = "missing"
MCU_FLASH_MAX = 16 * 2**20  # boards with more flash (the host) are not drawn as limits


@dataclass
class BoardInfo:
    """What the report needs of a board file."""

    id: str
    name: str
    flash_bytes: int
    ram_bytes: int


@dataclass
class Recommendation:
    """The result of the optimizing-vs-satisficing choice for one board."""

    board: str
    variant: str | None  # None: nothing fits
    accuracy: float | None = None
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (variant, why it was left out)
    note: str = ""


@dataclass
class ReportData:
    """Everything the report shows, as read from the build tree by :func:`collect`."""

    cards: dict[str, dict]
    host: list[dict]
    stress: list[dict]
    device: list[dict]
    compare: dict | None
    boards: list[BoardInfo]
    recommendations: list[Recommendation]
    pixels: dict | None = None  # rfe-lr: {"pixels": [...], "weights": [[...]]}
    notes: list[str] = field(default_factory=list)  # parts that could not be read, and why
    board: str | None = None  # the board the pipeline ran for (its recommendation drives the confusion plot)
    board_compare: list[dict] = field(default_factory=list)  # compare-<board>.json summaries (bench compare --board)
    searches: list[dict] = field(default_factory=list)  # build/search/<board>/pareto.json (edgedigit search)


# ------------------------------------------------------------------------------------------- collecting


def latest(records: Iterable[dict], keys: tuple[str, ...]) -> list[dict]:
    """The last record for each distinct ``keys`` tuple, in first-seen order."""
    out: dict[tuple, dict] = {}
    for r in records:
        out[tuple(r.get(k) for k in keys)] = r
    return list(out.values())


def read_cards() -> dict[str, dict]:
    """Every readable card under ``build/models`` by variant (``core.store``), as plain dicts."""
    from ..core.errors import ModelError
    from ..core.store import read_card, trained_variants

    cards = {}
    for name in trained_variants():
        try:
            cards[name] = dict(read_card(name))
        except (OSError, ModelError):
            continue
    return cards


def read_device_results() -> list[dict]:
    """One summary per ``results/device-<board>-<variant>.jsonl`` (``edgedigit bench device``), computed
    from its samples, so an interrupted run shows what it received (``samples`` of ``expected``)."""
    out = []
    for p in sorted(results_dir().glob(f"{DEVICE_PREFIX}*.jsonl")):
        recs = read_jsonl(p)
        sessions = [r for r in recs if r.get("type") == "session"]
        if not sessions:
            continue
        s = sessions[-1]
        samples = {}
        for r in recs:
            if r.get("type") == "sample" and isinstance(r.get("index"), int):
                samples[r["index"]] = r
        out.append(device_summary(s, [samples[i] for i in sorted(samples)], p.name))
    return latest(out, ("board", "variant"))


def device_summary(session: dict, samples: list[dict], file: str = "") -> dict:
    """Accuracy, latency, agreement with TFLM and the counter drift of one device run."""
    from ..measure.bench_stress import device_drift

    unit = str(session.get("counter_unit", ""))
    d = {"board": session.get("board"), "variant": session.get("variant"), "backend": session.get("backend"),
         "dataset": session.get("dataset"), "counter_unit": unit, "counter_note": session.get("counter_note", ""),
         "expected": session.get("samples"), "samples": len(samples), "_file": file}
    if not samples:
        return d
    counters = np.asarray([r["counter"] for r in samples], np.float64)
    if unit in ("ns", "instructions"):  # ns, or -icount shift=0 (1 emulated ns per instruction)
        us = counters / 1000.0
    else:
        us = np.asarray([r.get("us", np.nan) for r in samples], np.float64)
    if all(r.get("label") is not None for r in samples):  # a --model run without labels has no accuracy
        d["accuracy"] = float(np.mean([r["predicted"] == r["label"] for r in samples]))
    d["counter"] = {"median": float(np.median(counters)), "unit": unit}
    if np.all(np.isfinite(us)):
        d["latency_us"] = {"median": float(np.median(us))}
    d["agreement"] = {"identical": int(sum(bool(r.get("agree")) for r in samples)), "of": len(samples)}
    if len(samples) >= 2 and counters[: max(1, min(100, len(samples) // 2))].mean() > 0:
        d["drift"] = device_drift(counters)
    return d


def _device_figures(r: dict) -> dict:
    """Accuracy / latency / counter / agreement of a device summary (only the keys that were measured)."""
    out = {}
    if isinstance(r.get("accuracy"), (int, float)):
        out["accuracy"] = float(r["accuracy"])
    lat = r.get("latency_us")
    if isinstance(lat, dict) and isinstance(lat.get("median"), (int, float)):
        out["latency_us"] = float(lat["median"])
    cnt = r.get("counter")
    if isinstance(cnt, dict) and isinstance(cnt.get("median"), (int, float)):
        out["counter"] = float(cnt["median"])
        out["counter_unit"] = str(cnt.get("unit", ""))
    if isinstance(r.get("agreement"), dict):
        out["agreement"] = r["agreement"]
    return out


def _boards() -> tuple[list[BoardInfo], str]:
    try:
        from ..targets.boards import list_boards
    except ImportError:
        return [], "boards: edgedigit.boards is not available yet, so no flash limits and no recommendation"
    out = []
    for b in list_boards():
        out.append(BoardInfo(b.id, getattr(b, "name", b.id), int(b.flash_bytes), int(b.ram_bytes)))
    return out, ""


def _recommend(boards: list[BoardInfo], cards: dict[str, dict]) -> tuple[list[Recommendation], str]:
    """Per board: ``edgedigit select`` (the most accurate int8 variant whose flash and RAM fit, with the
    export budget numbers, and the reason every other variant was left out)."""
    try:
        from .select import select
    except ImportError:
        return [], "recommendation: edgedigit.select is not available (run `edgedigit select --board B`)"
    if not cards:
        return [], "recommendation: no trained variant (`edgedigit train`)"
    recs = []
    for b in boards:
        try:
            sel = select(b.id)
        except EdgeDigitError as e:
            return recs, f"recommendation: {e}"
        excluded = [(c.variant, c.left_out or "") for c in sel.candidates if c is not sel.chosen]
        if sel.chosen is None:
            recs.append(Recommendation(b.id, None, excluded=excluded))
            continue
        c = sel.chosen
        req = c.requirement or {}
        recs.append(Recommendation(b.id, c.variant, c.int8_accuracy, req.get("flash"), req.get("ram"), excluded,
                                   note=f"backend {c.backend}"))
    return recs, ""


def _pixels(cards: dict[str, dict]) -> dict | None:
    from ..core.store import FIXED_FILE, ModelFolder

    p = ModelFolder("rfe-lr").path / FIXED_FILE
    if not p.is_file():
        return None
    with np.load(p, allow_pickle=False) as z:
        return {"pixels": z["pixels"].tolist(), "weights": z["weights"].tolist()}


def collect(board: str | None = None, boards: list[BoardInfo] | None = None,
            recommend: Callable[[list[BoardInfo], dict], tuple[list[Recommendation], str]] | None = None) -> ReportData:
    """Read everything measured so far from the build tree.

    Args:
        board: the board the report focuses on (its recommended model gets the confusion matrix).
        boards: the boards to draw and recommend for (default: every board file, via ``edgedigit.boards``).
        recommend: ``(boards, cards) -> (recommendations, note)`` (default: ``edgedigit select`` per board).
    """
    notes = []
    cards = read_cards()
    host = latest(ResultFile(BENCH_HOST).records(), ("variant", "runtime"))
    stress = latest(ResultFile(STRESS).records(), ("variant", "runtime"))
    device = read_device_results()
    compare = None
    cp = ResultFile(COMPARE).summary_path
    if cp.is_file():
        try:
            compare = json.loads(cp.read_text())
        except ValueError as e:
            notes.append(f"{cp}: unreadable ({e})")
    board_compare = []
    for p in sorted(results_dir().glob(f"{COMPARE_BOARD_PREFIX}*.json")) if results_dir().is_dir() else []:
        if p == cp:
            continue
        try:
            summary = json.loads(p.read_text())
        except ValueError as e:
            notes.append(f"{p}: unreadable ({e})")
            continue
        if isinstance(summary, dict) and summary.get("kind") == "compare-board-summary":
            board_compare.append(summary)
    searches = []
    for p in sorted(search_dir().glob(f"*/{SEARCH_FRONT}")) if search_dir().is_dir() else []:
        try:
            searches.append(json.loads(p.read_text()))
        except ValueError as e:
            notes.append(f"{p}: unreadable ({e})")
    if boards is None:
        boards, note = _boards()
        if note:
            notes.append(note)
    recs, note = (recommend or _recommend)(boards, cards)
    if note:
        notes.append(note)
    return ReportData(cards, host, stress, device, compare, boards, recs, _pixels(cards), notes, board, board_compare,
                      searches)


# --------------------------------------------------------------------------------------------- helpers


def _pct(x) -> str:
    return f"{100 * float(x):.2f} %" if isinstance(x, (int, float)) else MISSING


def _int(x) -> str:
    return f"{int(x):,}" if isinstance(x, (int, float)) else MISSING


def _miss(cmd: str) -> str:
    return f"{MISSING} (`{cmd}`)"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _ok(records: list[dict], variant: str, runtime: str | None = None) -> list[dict]:
    return [r for r in records if r.get("variant") == variant and r.get("status", "ok") == "ok"
            and (runtime is None or r.get("runtime") == runtime)]


def _deployed(records: list[dict], variant: str) -> dict | None:
    """The record of the runtime that runs on the boards (``DEPLOYED_ORDER``: TFLM, native, fixed point, LiteRT)."""
    for rt in DEPLOYED_ORDER:
        r = _ok(records, variant, rt)
        if r:
            return r[-1]
    return None


def _datasets(data: ReportData) -> list[str]:
    seen = []
    for d in [c.get("dataset") for c in data.cards.values()] + [r.get("dataset") for r in data.host + data.stress]:
        if d:
            lab = plots.dataset_label(d)
            if lab not in seen:
                seen.append(lab)
    return seen


def _main_dataset(data: ReportData) -> dict | None:
    for c in data.cards.values():
        if c.get("dataset"):
            return c["dataset"]
    for r in data.host:
        if r.get("dataset"):
            return r["dataset"]
    return None


# --------------------------------------------------------------------------------------------- writing


def write_report(data: ReportData, out: Path | None = None) -> Path:
    """Render ``report.md`` and its plots into ``out`` (default ``build/reports``), atomically.

    Returns the path of ``report.md``.

    Raises:
        EdgeDigitError: nothing at all has been measured (no card, no result).
    """
    if not (data.cards or data.host or data.stress or data.device or data.compare or data.board_compare
            or data.searches):
        raise EdgeDigitError(f"nothing to report: no card under {models_dir()} and no result under "
                             f"{results_dir()}; run `edgedigit pipeline --board host` or `edgedigit train` first")
    out = Path(out) if out else reports_dir()
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / REPORT_FILE).is_file()):
        # the report replaces its folder whole: never a user's file or folder that is not an earlier report
        raise EdgeDigitError(f"{out}: exists and is not an edgedigit report folder (no report.md); "
                             "choose another --out or remove it")
    with staged_dir(out) as tmp:
        md = _render(data, tmp)
        (tmp / REPORT_FILE).write_text(md, encoding="utf-8")
    return out / REPORT_FILE


def _render(data: ReportData, tmp: Path) -> str:
    ds_main = _main_dataset(data)
    ds_label = plots.dataset_label(ds_main)
    parts: list[str] = []
    parts.append("# edgedigit report\n")
    datasets = _datasets(data)
    parts.append(f"Generated by edgedigit {__version__} from `{models_dir()}` and `{results_dir()}`. "
                 f"Every figure below was measured; a part that was not is marked **{MISSING}** with the "
                 "command that measures it.\n")
    parts.append(f"Dataset: **{', '.join(datasets) or 'unknown'}**.")
    if ds_main and ds_main.get("fallback"):
        parts.append("\n**These are NOT MNIST figures**: the embedded fallback dataset was used.")
    if len(datasets) > 1:
        parts.append("\n**Warning: the results come from more than one dataset; compare rows with care.**")
    machine = next((r["machine"] for r in data.host + data.stress if r.get("machine")), None)
    if machine:
        load = f", load average {machine['loadavg_1min']} when measured" if "loadavg_1min" in machine else ""
        parts.append(f"\nHost: {machine.get('cpu')} ({machine.get('cores_logical')} logical cores), "
                     f"{machine.get('os')}, Python {machine.get('python')}{load}.")
    parts.append("")

    parts.append(_comparison_section(data))
    parts.append(_recommendation_section(data))
    parts.append(_host_section(data))
    parts.append(_stress_section(data))
    parts.append(_device_section(data))
    parts.append(_compare_section(data, tmp))
    if data.searches:
        parts.append(_search_section(data, tmp))
    parts.append(_plots_section(data, tmp, ds_label, machine))
    if data.notes:
        parts.append("## Parts not available\n")
        parts.extend(f"- {MISSING}: {n}" for n in data.notes)
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _variants(data: ReportData) -> list[str]:
    names = list(data.cards)
    for r in data.host + data.stress:
        if r.get("variant") and r["variant"] not in names:
            names.append(r["variant"])
    return names


def _stress_cell(data: ReportData, v: str) -> str:
    recs = _ok(data.stress, v)
    if not recs:
        return _miss(f"edgedigit bench stress {v}")
    bad = [r for r in recs if r.get("verdict") != "stable"]
    if not bad:
        return f"stable ({len(recs)}/{len(recs)} runtimes)"
    return "unstable: " + "; ".join(f"{r['runtime']} {', '.join(r.get('verdict_reasons', []))}" for r in bad)


def _device_boards(data: ReportData) -> list[str]:
    boards = []
    for r in data.device:
        if r.get("board") and r["board"] not in boards:
            boards.append(r["board"])
    return boards


def _comparison_section(data: ReportData) -> str:
    boards = _device_boards(data)
    header = ["variant", "accuracy float", "accuracy int8", "size (B)", "params", "MACs",
              "host latency µs (median, runtime)", "host memory (peak RSS − before, MB)", "stress verdict"]
    header += [f"{b}: accuracy / latency" for b in boards]
    rows = []
    for v in _variants(data):
        card = data.cards.get(v)
        dep = _deployed(data.host, v)
        if card:
            row = [v, _pct(card.get("float_accuracy")), _pct(card.get("int8_accuracy")), _int(card.get("size_bytes")),
                   _int(card.get("params")), _int(card.get("macs"))]
        else:
            row = [v] + [_miss(f"edgedigit train {v}")] * 5
        if dep:
            lat = dep["latency_us"]["median"]
            rss = dep.get("rss_mb", {})
            mem = f"{rss['peak'] - rss['before']:.2f}" if "peak" in rss and "before" in rss else MISSING
            row += [f"{lat:,.1f} ({dep['runtime']})", f"{mem} ({dep['runtime']})"]
        else:
            row += [_miss(f"edgedigit bench host {v}")] * 2
        row.append(_stress_cell(data, v))
        for b in boards:
            d = [r for r in data.device if r.get("board") == b and r.get("variant") == v]
            if d:
                f = _device_figures(d[-1])
                if "counter" in f and f.get("counter_unit") == "instructions":  # qemu: say what is counted
                    lat = f"{f['counter']:,.0f} emulated instructions"
                elif "latency_us" in f:
                    lat = f"{f['latency_us']:,.1f} µs"
                else:
                    lat = f"{f['counter']:,.0f} {f.get('counter_unit', '')}".strip() if "counter" in f else MISSING
                row.append(f"{_pct(f.get('accuracy'))} / {lat}")
            elif card and card.get("kind", "neural") != "neural":  # bench device runs neural variants
                row.append("not measured (bench device runs neural variants)")
            else:
                row.append(_miss(f"edgedigit bench device --board {b} --variant {v}"))
        rows.append(row)
    text = ["## Comparison\n",
            "Accuracies from the cards (int8: LiteRT on the test set; rfe-lr: its fixed-point form). "
            "Size: int8 .tflite bytes (rfe-lr: bytes of the C tables). Host latency and memory: the runtime the "
            "boards run (TFLM, else native C, LiteRT, fixed point), one image per call after warm-up.\n"]
    text.append(_table(header, rows) if rows else f"{MISSING}: no variant trained (`edgedigit train`)")
    if not boards:
        text.append(f"\nDevice columns: {_miss('edgedigit bench device --board qemu-m4')} (no device-*.jsonl).")
    return "\n".join(text) + "\n"


def _recommendation_section(data: ReportData) -> str:
    text = ["## Recommendation per board\n",
            "Optimizing metric: int8 accuracy; satisficing metrics: the model (+ runtime) fits the board's flash "
            "and RAM. The recommended variant is the most accurate one that fits.\n"]
    if not data.recommendations:
        text.append(f"{_miss('edgedigit select --board B')}: no recommendation could be computed.")
        return "\n".join(text) + "\n"
    rows = []
    for r in data.recommendations:
        left_out = "; ".join(f"{v}: {why}" for v, why in r.excluded) or "-"
        if r.variant is None:
            rows.append([r.board, f"nothing fits{': ' + r.note if r.note else ''}", "-", "-", "-", left_out])
        else:
            rows.append([r.board, f"**{r.variant}**" + (f" ({r.note})" if r.note else ""), _pct(r.accuracy),
                         _int(r.flash_bytes), _int(r.ram_bytes), left_out])
    text.append(_table(["board", "recommended", "int8 accuracy", "flash needed (B)", "RAM needed (B)",
                        "left out (why)"], rows))
    return "\n".join(text) + "\n"


def _host_section(data: ReportData) -> str:
    text = ["## Host runtimes (`edgedigit bench host`)\n"]
    if not data.host:
        text.append(f"{_miss('edgedigit bench host')}: no bench-host.jsonl.")
        return "\n".join(text) + "\n"
    rows = []
    for r in data.host:
        if r.get("status") != "ok":
            rows.append([r["variant"], r["runtime"], f"{MISSING}: {r.get('reason', '')}"
                         + (f" (`{r['command']}`)" if r.get("command") else "")] + ["-"] * 7)
            continue
        lat, rss = r["latency_us"], r["rss_mb"]
        rows.append([r["variant"], r["runtime"], _pct(r["accuracy"]), f"{lat['median']:,.1f}", f"{lat['p95']:,.1f}",
                     f"{lat['p99']:,.1f}", f"{r['throughput_ips']:,.0f}",
                     f"{rss['before']:.1f} / {rss['after']:.1f} / {rss['peak']:.1f}", f"{r['cpu_us_per_image']:,.1f}"])
    text.append(_table(["variant", "runtime", "accuracy", "median µs", "p95 µs", "p99 µs", "batch throughput (img/s)",
                        "RSS before / after / peak (MB)", "CPU µs / image"], rows))
    ok = [r for r in data.host if r.get("status") == "ok"]
    if ok:
        r = ok[0]
        text.append(f"\nLatency: {r['runs']} single-image runs after {r['warmup']} warm-up runs; throughput: batches "
                    f"of {r['throughput_batch']} images, median of {r['throughput_repeats']}; accuracy on "
                    f"{r['n_test']:,} test images.")
    return "\n".join(text) + "\n"


def _stress_section(data: ReportData) -> str:
    text = ["## Stress test (`edgedigit bench stress`)\n"]
    if not data.stress:
        text.append(f"{_miss('edgedigit bench stress')}: no stress.jsonl.")
        return "\n".join(text) + "\n"

    def pct(x) -> str:
        return f"{x:+.2f} %" if isinstance(x, (int, float)) else "-"

    rows = []
    for r in data.stress:
        if r.get("status") != "ok":
            rows.append([r["variant"], r["runtime"], f"{MISSING}: {r.get('reason', '')}"] + ["-"] * 8)
            continue
        lat = r["latency_ms"]
        cpu = r.get("cpu_ms", {}).get("median")
        rows.append([r["variant"], r["runtime"], f"{r['iterations']} x {r['batch']}",
                     f"{lat['median']:.3f} / {lat['p95']:.3f} / {lat['p99']:.3f}",
                     f"{cpu:.3f}" if isinstance(cpu, (int, float)) else "-",
                     f"{pct(r['drift_pct'])} ({r.get('drift_clock', 'wall')})", pct(r.get("wall_drift_pct")),
                     pct(r.get("drift_mean_pct")), f"{r['growth_mb']:+.2f}", str(r["errors"]),
                     r["verdict"] + (f" ({'; '.join(r['verdict_reasons'])})" if r.get("verdict_reasons") else "")])
    text.append(_table(["variant", "runtime", "iterations x batch", "wall ms per batch p50 / p95 / p99",
                        "CPU ms per batch p50", "drift (verdict clock)", "wall-clock drift", "drift of means",
                        "memory growth (MB)", "errors", "verdict"], rows))
    text.append("\nDrift: the last 100 iterations against the first 100, in percent, on their medians. The verdict "
                "uses the process CPU time per iteration unless the run was made with `--clock wall`: on a machine "
                "shared with other work the wall clock measures the other processes too (the wall-clock drift and "
                "the seed's mean-based drift are shown beside it). Stable: |drift| < 5 %, memory growth < 10 MB, "
                "no errors.")
    dev = latest(read_jsonl(results_dir() / "stress-device.jsonl"), ("board", "variant"))
    if dev:
        text.append("\nLong runs on devices (`edgedigit bench stress --board B`), drift from the device's own counter:\n")
        text.append(_table(["board", "variant", "inferences", "median counter", "drift (medians)", "drift (means)",
                            "verdict"],
                           [[d.get("board"), d.get("variant"), str(d.get("samples")),
                             f"{d.get('median', 0):,.0f} {d.get('counter_unit', '')}", pct(d.get("drift_pct")),
                             pct(d.get("drift_mean_pct")), d.get("verdict", MISSING)] for d in dev]))
    return "\n".join(text) + "\n"


def _device_section(data: ReportData) -> str:
    text = ["## On the devices (`edgedigit bench device`)\n"]
    if not data.device:
        text.append(f"{_miss('edgedigit bench device --board qemu-m4')}: no device-*.jsonl under {results_dir()}.")
        return "\n".join(text) + "\n"
    rows = []
    for r in data.device:
        f = _device_figures(r)
        agree = f.get("agreement")
        agree_s = f"{agree['identical']}/{agree['of']} images identical" if agree else MISSING
        cnt = f"{f['counter']:,.0f} {f.get('counter_unit', '')}" if "counter" in f else MISSING
        lat = f"{f['latency_us']:,.1f}" if "latency_us" in f else MISSING
        dr = r.get("drift")
        drift = f"{dr['drift_pct']:+.2f} % ({dr['verdict']})" if dr else MISSING
        n = f"{r.get('samples', 0)}/{r.get('expected', '?')}"
        rows.append([r.get("board", "?"), r.get("variant", "?"), r.get("backend") or "-", n, _pct(f.get("accuracy")),
                     lat, cnt, agree_s, drift, plots.dataset_label(r.get("dataset"), r.get("samples")), r.get("_file", "")])
    text.append(_table(["board", "variant", "backend", "samples", "accuracy", "latency µs (median)",
                        "counter (median)", "raw outputs vs host TFLM", "counter drift (last vs first 100)",
                        "images from", "file"], rows))
    notes = sorted({r["counter_note"] for r in data.device if r.get("counter_note")})
    for n in notes:
        text.append(f"\nNote: {n}")
    if any(r.get("board") == "qemu-m4" for r in data.device):
        text.append("\nqemu-m4 counts are emulated instructions (QEMU -icount), not cycles of a real chip.")
    return "\n".join(text) + "\n"


def _compare_section(data: ReportData, tmp: Path) -> str:
    text = ["## Native C vs TFLM on the same model (`edgedigit bench compare`)\n"]
    text.append(_board_compare_part(data, tmp))
    text.append("### On this host (x86, valgrind callgrind)\n")
    c = data.compare
    if not c:
        text.append(f"{_miss('edgedigit bench compare')}: no compare.json.")
        return "\n".join(text) + "\n"
    rows = []
    for r in c.get("results", []):
        def cell(d, key, fmt="{:,}"):
            v = d.get(key) if d else None
            return fmt.format(v) if isinstance(v, (int, float)) else MISSING
        ins, ram, flash = r.get("instructions", {}), r.get("ram", {}), r.get("flash", {})
        rows.append([r.get("variant"), cell(ins, "native"), cell(ins, "tflm"), cell(ins, "ratio", "{:.3f}x"),
                     cell(ins, "ratio_O3", "{:.3f}x"),
                     cell(ram, "native_plan"), cell(ram, "lower_bound"), cell(ram, "tflm_arena"),
                     cell(ram, "ratio_to_lower_bound", "{:.3f}x"), cell(flash, "native"), cell(flash, "tflm"),
                     cell(flash, "ratio", "{:.3f}x")])
    text.append(_table(["variant", "instr./inference native (-O2)", "TFLM", "ratio (goal <= 0.5x)", "ratio with -O3",
                        "RAM native plan (B)",
                        "liveness lower bound (B)", "TFLM arena (B)", "native / bound (goal <= 1.1x)",
                        "flash native (B)", "flash TFLM (B)", "flash ratio"], rows))
    if c.get("method"):
        text.append("\nMethod: " + " ".join(f"{k}: {v}" for k, v in c["method"].items()))
    return "\n".join(text) + "\n"


_FIRMWARES = (("native", "native"), ("tflm_cmsis_nn", "TFLM + CMSIS-NN"), ("tflm_reference", "TFLM reference"))


def _board_compare_part(data: ReportData, tmp: Path) -> str:
    """The emulated-board comparison (the target CPU): a table and a plot per board, first in the section."""
    if not data.board_compare:
        return (f"### On the Cortex-M4 (qemu-m4)\n\n{_miss('edgedigit bench compare --board qemu-m4')}: "
                "no compare-qemu-m4.json.\n")
    text = []
    for c in data.board_compare:
        board, results = c.get("board", "?"), c.get("results", [])
        unit = next((r.get("counter_unit") for r in results if r.get("counter_unit")), "counter")
        ds = plots.dataset_label(c.get("dataset"), c.get("images"))
        text.append(f"### On the target CPU: {board} (`edgedigit bench compare --board {board}`)\n")
        n = c.get("images")
        text.append(f"The same {_int(n)} images ({ds}) through the same serial protocol into three firmwares per "
                    f"model. Counts are {unit}: {c.get('counter_note') or 'the device counter'}.\n")

        def val(r: dict, part: str, key: str, fmt: str = "{:,}") -> str:
            v = (r.get(part) or {}).get(key)
            return fmt.format(v) if isinstance(v, (int, float)) else MISSING

        def same(r: dict, key: str) -> str:
            ok = (r.get("outputs_identical") or {}).get(key)
            if ok is None:
                return MISSING
            if ok:
                return "yes"
            imgs = r.get("images", 0) - (r.get("images_identical") or {}).get(key, 0)
            elems = r.get("elements", 0) - (r.get("elements_identical") or {}).get(key, 0)
            return f"**NO**: {imgs:,} images, {elems:,} elements differ"

        speed, size = [], []
        for r in results:
            ratio = (r.get("native_over_tflm_cmsis_nn") or {})
            speed.append([r.get("variant"), _int(r.get("macs")), *(val(r, "instructions", k) for k, _ in _FIRMWARES),
                          f"{ratio['instructions']:.2f}x" if "instructions" in ratio else MISSING,
                          " / ".join(val(r, "instructions_per_mac", k, "{:.2f}") for k, _ in _FIRMWARES)])
            size.append([r.get("variant"), *(val(r, "flash", k) for k, _ in _FIRMWARES),
                         *(val(r, "ram", k) for k, _ in _FIRMWARES),
                         " / ".join(same(r, k) for k, _ in _FIRMWARES)])
        names = [n for _, n in _FIRMWARES]
        text.append(_table(["model", "MACs", *(f"{unit} per inference, {n}" for n in names), "native / CMSIS-NN",
                            f"{unit} per MAC ({' / '.join(names)})"], speed))
        text.append("")
        text.append(_table(["model", *(f"flash {n} (B)" for n in names), *(f"RAM {n} (B)" for n in names),
                            f"outputs = TFLM interpreter on all {_int(n)} images ({' / '.join(names)})"], size))
        text.append("\nFlash: text + data of the whole firmware. RAM: data + bss + the stack's measured high-water mark.")
        other = [r for r in results if isinstance(r.get("dataset"), dict) and r["dataset"].get("name") == "random"]
        if other:
            what = "not digit classifiers" if len(other) > 1 else "not a digit classifier"
            text.append(f"\n{', '.join(str(r.get('variant')) for r in other)}: {what}; every firmware "
                        f"gets the same {_int(n)} seeded random inputs ({other[0]['dataset'].get('source')}) instead "
                        "of the images, compared with the interpreter's outputs on them.")
        missing = [f"{r.get('variant')} {k}: {why}" for r in results for k, why in (r.get("missing") or {}).items()]
        if missing:
            text.append("\nNot built: " + "; ".join(missing) + ".")
        fname = f"compare_{board}.png"
        series = {n: [(r.get("instructions") or {}).get(k) for r in results] for k, n in _FIRMWARES}
        inputs = f"{ds} and seeded random inputs" if other else ds
        title = plots.firmware_instructions(tmp / fname, [str(r.get("variant")) for r in results], series, board,
                                            inputs, unit)
        text.append(f"\n![{title}]({fname})\n")
        if c.get("method"):
            text.append("Method: " + " ".join(f"{k}: {v}." for k, v in c["method"].items()) + "\n")
    return "\n".join(text) + "\n"


def _search_section(data: ReportData, tmp: Path) -> str:
    """Each board's search front (``edgedigit search``): a table, and a plot beside the hand-designed variants."""
    text = ["## Architecture search (`edgedigit search`)\n"]
    native = {r.get("variant"): (r.get("instructions") or {}).get("native")
              for c in data.board_compare for r in c.get("results", [])}
    for s in data.searches:
        board, counts, front = s.get("board", "?"), s.get("counts") or {}, s.get("front") or []
        text.append(f"### {board}: study `{(s.get('study') or {}).get('name')}`\n")
        text.append(f"Objectives {', '.join(s.get('objectives') or [])}; {counts.get('complete', 0):,} trials complete, "
                    f"{counts.get('pruned', 0):,} pruned (over the board's budget or the limits, before training), "
                    f"{counts.get('failed', 0):,} failed. Accuracy: {s.get('accuracy_of')}. Instructions: "
                    f"{s.get('instructions_of')}; *measured* where the finalist's firmware was run on qemu-m4.\n")
        rows = []
        for r in front:
            measured = r.get("instructions_measured")
            instr = f"{_int(measured)} measured" if measured is not None else f"{_int(r.get('instructions'))} estimated"
            rows.append([str(r.get("trial")) + (" (baseline)" if r.get("baseline") else ""),
                         str(r.get("architecture") or MISSING), _pct(r.get("accuracy")), instr, _int(r.get("flash")),
                         _int(r.get("ram")), str(r.get("backend") or MISSING)])
        text.append(_table(["trial", "architecture", "int8 accuracy (validation)", "instructions per inference",
                            "flash (B)", "RAM (B)", "backend"], rows))
        points = [{"label": f"trial {r.get('trial')}", "accuracy": r.get("accuracy"),
                   "instructions": r.get("instructions_measured") or r.get("instructions"), "kind": "front"}
                  for r in front]
        points += [{"label": v, "accuracy": c.get("int8_accuracy"), "instructions": native.get(v), "kind": "variant"}
                   for v, c in data.cards.items() if native.get(v)]
        points = [p for p in points if isinstance(p["accuracy"], (int, float)) and p["instructions"]]
        if points:
            fname = f"search_{board}.png"
            title = plots.search_front(tmp / fname, points, board)
            text.append(f"\n![{title}]({fname})\n")
            if any(p["kind"] == "variant" for p in points):
                text.append("The hand-designed variants are placed by their int8 accuracy on the test set and the "
                            "native firmware's instructions measured by `edgedigit bench compare --board qemu-m4`; "
                            "the front by its validation accuracy: the test set is kept for the finalists' cards "
                            "(`edgedigit search promote`).\n")
    return "\n".join(text) + "\n"


def _plots_section(data: ReportData, tmp: Path, ds_label: str, machine: dict | None) -> str:
    text = ["## Plots\n"]

    def link(fname: str, title: str) -> None:
        text.append(f"![{title}]({fname})\n")

    # accuracy vs size
    pts = [{"variant": v, "size_bytes": c["size_bytes"], "accuracy": c["int8_accuracy"]}
           for v, c in data.cards.items() if isinstance(c.get("size_bytes"), (int, float))
           and isinstance(c.get("int8_accuracy"), (int, float))]
    if pts:
        limits = [(b.id, b.flash_bytes) for b in data.boards if b.flash_bytes <= MCU_FLASH_MAX]
        link("accuracy_vs_size.png", plots.accuracy_vs_size(tmp / "accuracy_vs_size.png", pts, limits, ds_label))
        big = [b.id for b in data.boards if b.flash_bytes > MCU_FLASH_MAX]
        if big:
            text.append(f"Not drawn: {', '.join(big)} (more than {MCU_FLASH_MAX // 2**20} MiB of flash: every model "
                        "fits).\n")
        if not data.boards:
            text.append(f"Boards' flash limits: {MISSING} (edgedigit.boards not available).\n")
    else:
        text.append(f"Accuracy vs size: {_miss('edgedigit train && edgedigit quantize')}\n")
    # latency
    samples = {f"{r['variant']} / {r['runtime']}": r["latency_samples_us"] for r in data.host
               if r.get("status") == "ok" and r.get("latency_samples_us")}
    if samples:
        host_ds = plots.dataset_label(next(r["dataset"] for r in data.host if r.get("status") == "ok"))
        cpu = (machine or {}).get("cpu", "this host")
        link("latency.png", plots.latency_distributions(tmp / "latency.png", samples, host_ds, cpu))
    else:
        text.append(f"Latency distributions: {_miss('edgedigit bench host')}\n")
    # confusion of the recommended model
    rec = _recommended(data)
    conf = None
    if rec:
        dep = _deployed(data.host, rec)
        if dep and dep.get("confusion"):
            conf = dep
    if conf:
        name = f"{rec} ({conf['runtime']})"
        link("confusion.png", plots.confusion_matrix(tmp / "confusion.png", np.asarray(conf["confusion"]), name,
                                                     plots.dataset_label(conf["dataset"], conf.get("n_test"))))
    elif rec:
        text.append(f"Confusion matrix of {rec}: {_miss(f'edgedigit bench host {rec}')}\n")
    else:
        text.append(f"Confusion matrix: {MISSING} (no recommended model: `edgedigit select --board B`)\n")
    # rfe-lr pixels
    if data.pixels:
        card = data.cards.get("rfe-lr", {})
        link("rfe_lr_pixels.png", plots.pixel_heatmap(tmp / "rfe_lr_pixels.png", data.pixels["pixels"],
                                                      np.asarray(data.pixels["weights"]),
                                                      plots.train_label(card.get("dataset") or _main_dataset(data))))
    else:
        text.append(f"rfe-lr pixel map: {_miss('edgedigit train rfe-lr && edgedigit quantize rfe-lr')}\n")
    return "\n".join(text)


def _recommended(data: ReportData) -> str | None:
    """The variant the plots focus on: the pipeline board's recommendation, else the first board's,
    else (no board could be checked) the most accurate int8 variant."""
    recs = [r for r in data.recommendations if r.variant]
    if data.board:
        mine = [r for r in recs if r.board == data.board]
        if mine:
            return mine[0].variant
    if recs:
        return recs[0].variant
    if data.recommendations:  # boards were checked and nothing fits anywhere
        return None
    scored = [(c["int8_accuracy"], v) for v, c in data.cards.items() if isinstance(c.get("int8_accuracy"), (int, float))]
    return max(scored)[1] if scored else None


def report(board: str | None = None, out: Path | None = None) -> Path:
    """Collect everything measured so far and write ``build/reports/report.md``; returns its path."""
    return write_report(collect(board), out)


def stage(board_id: str, variants: list[Any]) -> Stage:
    """The pipeline's ``report`` stage: every result file and the variants' cards in, ``report.md`` out."""
    def inputs() -> dict[str, Any]:
        files = sorted(results_dir().glob("*.json*")) if results_dir().is_dir() else []
        cards = [c for c in sorted(ModelFolder(v.name).card_path for v in variants) if c.is_file()]
        return {"files": files_hashes(files + cards), "board": board_id}

    def run() -> None:
        report(board_id)

    return Stage("report", inputs, lambda: [reports_dir() / REPORT_FILE], run)
