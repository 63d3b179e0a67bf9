"""Export every trained variant for every board and backend, and fingerprint every file written.

Run it on two builds (or two versions of edgedigit on copies of the same models) and compare the manifests:
the same models and boards must give the same bytes.

    EDGEDIGIT_BUILD=build .venv/bin/python benchmarks/export_matrix.py --out /tmp/a.json
    EDGEDIGIT_BUILD=other .venv/bin/python benchmarks/export_matrix.py --out /tmp/b.json --compare /tmp/a.json

Each export goes through the command line (``edgedigit export --board B --variant V --backend K``), so the
script measures what a user gets. A combination that does not fit or cannot run is recorded with the one
line edgedigit printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-c", "from edgedigit.cli import main; main()"]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, env=os.environ.copy())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="manifest to write (JSON)")
    ap.add_argument("--compare", type=Path, help="an earlier manifest: list every difference")
    args = ap.parse_args()

    build = Path(os.environ.get("EDGEDIGIT_BUILD") or "build").resolve()
    boards = json.loads(run(["boards", "--json"]).stdout)
    variants = sorted(p.parent.name for p in (build / "models").glob("*/card.json"))
    manifest: dict[str, dict] = {}
    for board in boards:
        for variant in variants:
            for backend in board["backends"]:
                key = f"{board['id']} {variant} {backend}"
                res = run(["export", "--board", board["id"], "--variant", variant, "--backend", backend, "--json"])
                if res.returncode != 0:
                    manifest[key] = {"status": "refused", "message": res.stderr.strip()}
                    continue
                project = Path(json.loads(res.stdout)["project"])
                files = {p.relative_to(project).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(project.rglob("*")) if p.is_file()}
                manifest[key] = {"status": "exported", "files": files}
    args.out.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    exported = sum(v["status"] == "exported" for v in manifest.values())
    nfiles = sum(len(v.get("files", {})) for v in manifest.values())
    print(f"{len(variants)} variants x {len(boards)} boards: {exported} projects exported ({nfiles} files), "
          f"{len(manifest) - exported} refused")
    if args.compare is None:
        return 0
    before = json.loads(args.compare.read_text())
    differ = []
    for key in sorted(set(before) | set(manifest)):
        a, b = before.get(key), manifest.get(key)
        if a is None or b is None or a["status"] != b["status"]:
            differ.append(f"{key}: {a and a['status']} -> {b and b['status']}")
        elif a["status"] == "refused" and a["message"] != b["message"]:
            differ.append(f"{key}: message {a['message']!r} -> {b['message']!r}")
        else:
            fa, fb = a.get("files", {}), b.get("files", {})
            differ += [f"{key}: {f}" for f in sorted(set(fa) | set(fb)) if fa.get(f) != fb.get(f)]
    compared = sum(len(v.get("files", {})) for v in before.values())
    print(f"compared with {args.compare}: {compared} files and {len(before)} combinations; {len(differ)} differences")
    for line in differ:
        print(f"  {line}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
