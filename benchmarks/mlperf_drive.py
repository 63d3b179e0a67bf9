"""Run MLPerf Tiny's reference host runner, unedited, against a device on a serial port (a pty).

    python benchmarks/mlperf_drive.py RUNNER_DIR PORT DATASET_DIR [TESTS_YAML] [MODE]

RUNNER_DIR is the runner's folder (``../shared/third_party/mlperf-tiny/runner``), PORT a serial device path
(the ``host`` board's pty, or QEMU's ``-serial pty``), DATASET_DIR the runner's dataset folder (one
sub-folder per model id with ``y_labels.csv``), TESTS_YAML its test script (default: the runner's own
``tests_performance.yaml``), MODE ``p`` (performance, default) or ``a``.

This does what the runner's ``main.py`` does under ``if __name__ == '__main__'``, with the runner's own
functions and classes (``run_test``: ``identify_dut``, the ``DUT`` over ``serial_device.SerialDevice``,
``Script``, ``DataSet``; then ``summarize_result``), with one substitution: the runner finds devices only by
USB vendor/product id (``DeviceManager.scan``), so the scan is replaced by one that hands it PORT as its
DUT. pyusb, which only that scan uses, is stood in for when it is not installed. The runner writes its
session log under ``sessions/`` in the current folder (run this from a scratch folder) and prints as usual;
the last line printed here is ``RESULT-JSON <the runner's result list>``.

Run as a separate process: the runner's ``script`` module redirects ``sys.stdout`` when imported.
"""

from __future__ import annotations

import json
import os
import sys
import types


def main(argv: list[str]) -> int:
    runner, port, dataset = argv[1:4]
    tests = argv[4] if len(argv) > 4 else os.path.join(runner, "tests_performance.yaml")
    mode = argv[5] if len(argv) > 5 else "p"
    sys.path.insert(0, os.path.abspath(runner))
    try:
        import usb.core  # noqa: F401  (the runner's USB scan, replaced below)
    except ImportError:
        usb = types.ModuleType("usb")
        usb.core = types.ModuleType("usb.core")
        sys.modules["usb"], sys.modules["usb.core"] = usb, usb.core
    import main as runner_main  # the runner's main.py (nothing runs at import but script.py's logging set-up)
    import yaml

    def scan(self) -> None:  # DeviceManager.scan, without USB: PORT is the DUT
        for definition in self._device_defs:
            if definition.get("type") == "dut":
                self._add_device(types.SimpleNamespace(device=port), definition)
        for definition in self.values():
            self._instantiate(definition)

    runner_main.DeviceManager.scan = scan
    dut = {"name": "edgedigit", "type": "dut", "baud": 115200}
    with open(tests) as f:
        test_script = yaml.load(f, Loader=yaml.SafeLoader)
    result, power = runner_main.run_test([dut], dut, test_script, dataset, mode)
    if isinstance(result, dict):
        result = [result]
    for r in result:
        r["mode"] = mode
    runner_main.summarize_result(result, power, mode=mode)
    print("RESULT-JSON " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
