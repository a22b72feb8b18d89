"""Run every benchmark script with its defaults, one after the other (each as its own
process, its output shown as it runs), then print all their figures in one table with each
target and whether it was met.

    python benchmarks/run_all.py [--only noop,plan_change] [--json FILE]

Takes about 20 minutes on a 2-core machine (most of it the first builds of 10k assets).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import ROOT, machine, table

SCRIPTS = ["noop", "plan_change", "first_build", "throughput", "memory", "reference_hash", "report_size"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run every benchmark and print all figures in one table.")
    parser.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated scripts (default all)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure as JSON here")
    args = parser.parse_args(argv)
    print(f"assetbuild benchmarks; {machine()}", flush=True)
    figures: list[dict] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ab-all-") as tmp:
        for name in args.only.split(","):
            out = Path(tmp) / f"{name}.json"
            print(f"\n=== {name} ===", flush=True)
            start = time.perf_counter()
            code = subprocess.call([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--figures", str(out)],
                                   cwd=ROOT)
            print(f"({name}: {time.perf_counter() - start:.0f} s)", flush=True)
            if code != 0 or not out.exists():
                failed.append(name)
                continue
            figures += [{"script": name, **f} for f in json.loads(out.read_text())["figures"]]
    rows = []
    for f in figures:
        value = f"{f['value']:.3f}" if f["unit"] in ("s", "x") else f"{f['value']:.1f}"
        verdict = "" if f["met"] is None else ("met" if f["met"] else "NOT met")
        rows.append([f["script"], f["name"], f"{value} {f['unit']}", f"{f['target']} {f['unit']}" if f["target"] else "",
                     verdict])
    print("\n=== all figures ===")
    print(table(["script", "figure", "value", "target", "verdict"], rows, left=2))
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
