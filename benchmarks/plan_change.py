"""`assetbuild plan` after one chain root's prompt changed, on built synthetic projects
(benchmarks/synth.py; local, 64x64) of 1k, 5k and 10k assets: a whole process
(`python -m assetbuild plan --json`).

Each round changes a different root's prompt, so every timed plan sees a manifest it has not
seen before: the blueprint memo of the previous round's manifest serves every table but the
changed root's, and that root and its dependents are parsed, validated and expanded again
(issue 20; the graph checks run on all nodes), then every node is decided (10 or 14 of
them stale: the root, its nine chained dependents and, for the first chains, a 2x2 matrix
asset). Measured in the same round: `plan` again on the same manifest (the memo hits: what a
second look costs) and `python -c pass`. The project is built, then aged past the 2 s
racy-mtime window and planned once, before the rounds, so the memos of outputs are warm.

Measured processes run without PYTHONDONTWRITEBYTECODE in their environment (users have
bytecode caches; with it set, every run compiles every module again).

    python benchmarks/plan_change.py [--sizes 1000,5000,10000] [--repeat 5] [--figures FILE]

Targets: `plan` after one root prompt change on 10,000 assets <= 1.5 s (issue 7), <= 0.35 s
(issue 20).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench import PYTHON, Report, Sample, assetbuild, bench_env, kilo, machine, run_timed, table
from synth import CHAIN, change_root_prompt, layout, write_project

TARGET_S = {10000: 0.35}  # issue 20 (issue 7's was 1.5 s)
COMMAND = "python benchmarks/plan_change.py"


def measure(n: int, repeat: int, work: Path) -> dict:
    project = work / f"p{n}"
    text = write_project(project, n)
    env = bench_env({"ASSETBUILD_CACHE_DIR": str(project / ".assetbuild")})
    run_timed(assetbuild("build", "-j", "2"), project, env)
    time.sleep(2.1)  # past the racy-mtime window, so the outputs' hashes are kept
    run_timed(assetbuild("build"), project, env)  # warm-up: fills the memos
    chains = layout(n)[0] // CHAIN
    changed, again, python, cpu, stale = [], [], [], [], set()
    for i in range(repeat):
        manifest = change_root_prompt(text, root_index=(i * 37 % chains) * CHAIN)
        (project / "assetbuild.toml").write_text(manifest, encoding="utf-8")
        first = run_timed(assetbuild("plan", "--json"), project, env)
        second = run_timed(assetbuild("plan", "--json"), project, env)
        python.append(run_timed([PYTHON, "-c", "pass"], project, env).wall_s)
        actions = json.loads(first.stdout)["actions"]
        stale.add(sum(1 for a in actions if a["action"] == "generate"))
        if len(actions) != n or json.loads(second.stdout) != json.loads(first.stdout):
            raise SystemExit(f"unexpected plan at {n} assets")
        changed.append(first.wall_s)
        cpu.append(first.cpu_s)
        again.append(second.wall_s)
    shutil.rmtree(project, ignore_errors=True)
    return {"n": n, "changed": Sample(changed), "cpu": Sample(cpu), "again": Sample(again),
            "python": Sample(python), "stale": sorted(stale)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="plan after one root prompt change.")
    parser.add_argument("--sizes", default="1000,5000,10000", help="comma-separated asset counts")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per size (default 5)")
    parser.add_argument("--figures", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    print(f"plan after one root prompt change; {machine()}; min / median of {args.repeat} rounds, seconds")
    results = []
    with tempfile.TemporaryDirectory(prefix="ab-plan-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            results.append(measure(n, args.repeat, Path(tmp)))
    print(table(["assets", "plan after change", "its CPU (median)", "plan again (memo)", "python -c pass",
                 "to generate"],
                [[f"{r['n']:,}", r["changed"], f"{r['cpu'].median:.3f}", r["again"], r["python"],
                  "/".join(map(str, r["stale"]))] for r in results]))
    if len(results) > 1:
        base = results[0]
        print(f"growth from {kilo(base['n'])} (medians): " + "; ".join(
            f"{kilo(r['n'])} {r['changed'].median / base['changed'].median:.1f}x" for r in results[1:]))
    report = Report("plan_change")
    for r in results:
        k, cmd = f"{kilo(r['n'])}", f"{COMMAND} --sizes {r['n']}"
        report.add(f"plan after one root prompt change {k}", r["changed"].median, "s", cmd, at_most=TARGET_S.get(r["n"]))
        report.add(f"plan again, manifest unchanged {k}", r["again"].median, "s", cmd)
    report.print_verdicts()
    report.dump(args.figures)


if __name__ == "__main__":
    main()
