"""`plan --json` after one chain root's prompt changed, this code against an older checkout
(``--base DIR``, e.g. ``git worktree add --detach /tmp/ab-base COMMIT``) in the same rounds,
on one built synthetic project (benchmarks/synth.py; local, 64x64).

Each round starts from the blueprint memo of the previous manifest (as a user's last plan
or build left it), changes a different root's prompt, and runs both codes in alternating
order, each with its own cache folder (memos of its own format). Then a
cold plan (no blueprint memo) is run and all three plans must be the same. Wall and CPU
(user + sys of the process) medians, and their ratios: the machine may be shared.

    python benchmarks/plan_change_paired.py --base DIR [--assets 10000] [--repeat 5] [--project DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench import assetbuild, bench_env, machine, run_timed
from synth import CHAIN, change_root_prompt, layout, write_project

HERE = Path(__file__).resolve().parent.parent


def plan(project: Path, env: dict[str, str]) -> tuple[float, float, str]:
    run = run_timed(assetbuild("plan", "--json"), project, env)
    return run.wall_s, run.cpu_s, run.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="plan after one root prompt change, paired against --base.")
    parser.add_argument("--base", type=Path, required=True, help="a checkout of the code to compare with")
    parser.add_argument("--assets", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--project", type=Path, default=None, help="a project synth.py wrote and a build built here "
                        "(default: made and built in a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ab-paired-") as tmp:
        project = args.project or Path(tmp) / "p"
        # Each code its own cache folder: their memos (the lock's, the blueprint's) have other
        # formats, and each would read the lock's TOML again after the other wrote its memo.
        caches = {"this": project / ".assetbuild", "base": project / ".assetbuild-base"}
        envs = {"this": bench_env({"ASSETBUILD_CACHE_DIR": str(caches["this"]), "PYTHONPATH": str(HERE)}),
                "base": bench_env({"ASSETBUILD_CACHE_DIR": str(caches["base"]), "PYTHONPATH": str(args.base.resolve())})}
        if args.project is None:
            write_project(project, args.assets)
            run_timed(assetbuild("build", "-j", "2"), project, envs["this"])
            time.sleep(2.1)  # past the racy-mtime window
            run_timed(assetbuild("build"), project, envs["this"])
        text = (project / "assetbuild.toml").read_text(encoding="utf-8")
        chains = layout(args.assets)[0] // CHAIN

        def memos() -> list[Path]:
            return [memo for cache in caches.values() for memo in cache.glob("blueprint-*.json")]

        figures: dict[str, list[tuple[float, float]]] = {"base": [], "this": []}
        print(f"plan after one root prompt change, {args.assets:,} assets; {machine()}")
        for i in range(args.repeat):
            before = change_root_prompt(text, root_index=(i * 37 % chains) * CHAIN)
            after = change_root_prompt(text, root_index=((i * 37 + 11) % chains) * CHAIN)
            outs = {}
            for who in (("base", "this") if i % 2 == 0 else ("this", "base")):
                (project / "assetbuild.toml").write_text(before, encoding="utf-8")
                for memo in memos():
                    memo.unlink()
                plan(project, envs[who])  # the memo of the manifest before the change, this code's own
                (project / "assetbuild.toml").write_text(after, encoding="utf-8")
                wall, cpu, outs[who] = plan(project, envs[who])
                figures[who].append((wall, cpu))
            for memo in memos():
                memo.unlink()
            cold = plan(project, envs["this"])[2]
            if not outs["this"] == outs["base"] == cold:
                raise SystemExit(f"round {i}: the plans differ")
        (project / "assetbuild.toml").write_text(text, encoding="utf-8")
    med = {who: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for who, v in figures.items()}
    for who in ("base", "this"):
        print(f"{who}: wall median {med[who][0]:.3f} s, CPU median {med[who][1]:.3f} s "
              f"(walls {' '.join(f'{w:.2f}' for w, _ in figures[who])})")
    print(f"this / base: wall {med['this'][0] / med['base'][0]:.2f}x, CPU {med['this'][1] / med['base'][1]:.2f}x; "
          "the plans equal a cold plan's in every round")


if __name__ == "__main__":
    main()
