"""``edgedigit search``: architecture search under a board's budget, measured as on the device.

- :mod:`.space`: the search space (conv and MLP families, training knobs, quantization granularity);
- :mod:`.trial`: one trial (budget before training, train, int8, TFLM accuracy on a held-out validation split);
- :mod:`.cost`: the latency objective (a per-op cost model calibrated on the emulated Cortex-M4);
- :mod:`.runner`: the study (Optuna sampler and storage, Ray trials, resume, the Pareto front);
- :mod:`.promote`: finalists become variants (``search-<board>-<trial>``), retrained with three seeds.

This package sits on the pipeline's floor (7): it uses the stages below it and is used only by the CLI.
"""
