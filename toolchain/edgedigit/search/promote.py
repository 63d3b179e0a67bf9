"""Promotion: a finished trial becomes a variant ``search-<board>-<trial>`` that every stage treats like any other.

:func:`promote` writes the trial's spec, with what the study recorded of it, to
``build/search/promoted/search-<board>-<trial>.json`` (the variant registry reads that folder, so the
variant exists for every later command and process), then trains it on the whole training set (the trainer
still holds out its validation split) with three seeds, quantizes each (the quantize stage, test-set accuracy
of the int8 model), and keeps the first seed's model in ``build/models/<name>/``. Its card records the
architecture, the study and trial, the three seeds' int8 test accuracies with their mean and minimum, the
budget on the board, and the emulated Cortex-M4 instructions measured by running the model beside the
cost model's estimate.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import EdgeDigitError
from ..core.fsutil import write_json
from ..core.paths import promoted_dir, search_dir
from ..core.store import ModelFolder, read_card

SEEDS = 3


def variant_name(board_id: str, trial: int) -> str:
    """``search-<board>-<trial>``."""
    return f"search-{board_id}-{trial}"


def load_trial(board: str, trial: int, storage: str | None = None,
               study_name: str | None = None) -> tuple[Any, Any, str, str, dict]:
    """The finished trial ``trial`` of the board's study: ``(frozen trial, board, storage URL, study name,
    what the study was created with)``.

    Raises:
        EdgeDigitError: no such study, no such trial, or the trial did not complete (names its state).
    """
    from optuna.trial import TrialState

    from ..targets.boards import load_board
    from .runner import _quiet_optuna, default_study_name, shown_url, storage_url

    optuna = _quiet_optuna()
    b = load_board(board)
    url = storage_url(b.id, storage)
    name = study_name or default_study_name(b.id)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise EdgeDigitError(f"no search study for {b.id} ({shown_url(url)} missing): run `edgedigit search --board "
                             f"{b.id}` first")
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        raise EdgeDigitError(f"no study named {name} in {shown_url(url)}: run `edgedigit search --board {b.id}` "
                             f"first") from None
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if trial not in trials:
        raise EdgeDigitError(f"study {name} has no trial {trial} (trials 0 to {max(trials, default=-1)})")
    t = trials[trial]
    if t.state != TrialState.COMPLETE:
        raise EdgeDigitError(f"trial {trial} of study {name} is {t.state.name.lower()}, not complete: only trained "
                             f"trials can be promoted")
    return t, b, shown_url(url), name, dict(study.user_attrs.get("edgedigit", {}))


def promote(board: str, trial: int, dataset: Any, *, storage: str | None = None, study_name: str | None = None,
            seed: int = 0, seeds: int = SEEDS, calibration_samples: int = 500, verify: bool = True,
            reporter: Any = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Promote trial ``trial`` of ``board``'s study (see the module docstring); returns the variant's card.

    Args:
        board: board id or alias.
        trial: the trial's number in the study.
        dataset: the dataset to train and test on (the test set gives the card's accuracies).
        storage, study_name: the study (defaults as ``edgedigit search``).
        seed: the first training seed; the others are ``seed + 1`` ... (the variant keeps ``seed``'s model).
        seeds: how many seeds to train.
        calibration_samples: training images that calibrate the int8 ranges.
        verify: run the int8 model on the emulated Cortex-M4 and record its instructions (not on an AVR board).

    Raises:
        EdgeDigitError: no such study or trial, or the trial did not complete.
    """
    from ..models.quantize import quantize_variants
    from ..models.train import train_variants
    from ..models.variants import Reporter, get_variant
    from ..models.variants.searched import check_spec
    from ..targets.backends import judge
    from ..targets.export import resolve_model

    say = log or (lambda _msg: None)
    t, b, url, name, created = load_trial(board, trial, storage, study_name)
    spec = check_spec(t.user_attrs.get("spec"), f"trial {trial}")
    vname = variant_name(b.id, trial)
    entry = {"name": vname, "spec": spec, "summary": f"searched for {b.id} (study {name}, trial {trial})",
             "search": {"board": b.id, "study": name, "storage": url, "trial": trial, "values": list(t.values),
                        "objectives": created.get("objectives"), "study_seed": created.get("seed"),
                        "architecture": t.user_attrs.get("spec", {}).get("architecture"),
                        "validation_accuracy": t.user_attrs.get("accuracy"),
                        "instructions_estimated": t.user_attrs.get("instructions"),
                        "flash": t.user_attrs.get("flash"), "ram": t.user_attrs.get("ram")}}
    write_json(promoted_dir() / f"{vname}.json", entry)
    get_variant(vname)  # the registry sees it now
    seed_list = [seed + i for i in range(seeds)]
    results = {}
    for s in [*seed_list[1:], seed_list[0]]:  # the first seed last: its model is the one kept
        say(f"{vname}: training with seed {s}")
        train_variants([vname], dataset, seed=s, reporter=reporter or Reporter())
        card = quantize_variants([vname], dataset, calibration_samples=calibration_samples, seed=s)[0]
        results[s] = card["int8_accuracy"]
    accs = [results[s] for s in seed_list]
    card = dict(read_card(vname))
    card["seeds"] = {"seeds": seed_list, "int8_accuracy": accs, "int8_accuracy_mean": statistics.fmean(accs),
                     "int8_accuracy_min": min(accs), "kept": seed_list[0],
                     "of": "int8 model (LiteRT reference kernels) on the test set, one training per seed"}
    src = resolve_model(vname)
    fit = judge(b, src)
    req = fit.requirement or (fit.too_large[0] if fit.too_large else None)
    card["search"] = {**card.get("search", {}), "budget": req.as_dict() if req is not None else None,
                      "fits": fit.requirement is not None}
    from .cost import not_applicable

    # the emulated Cortex-M4's instructions say nothing of an AVR board (cost.not_applicable)
    if verify and not not_applicable(b) and shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):
        from ..core.graph import load_graph
        from ..core.int8 import quantize_for
        from ..runtimes.native_host import run_qemu_m4

        graph = load_graph(src.path)
        _, measured = run_qemu_m4(src.path, quantize_for(graph, dataset.x_test[:2]),
                                  search_dir() / "verify" / vname)
        card["search"]["instructions_measured"] = measured
    write_json(ModelFolder(vname).card_path, card)
    return card
