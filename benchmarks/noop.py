"""No-op `assetbuild build` and `assetbuild check` on synthetic projects of 1k, 5k and 10k
assets (benchmarks/synth.py: chains, matrix assets, reference files; local, 64x64), each a
whole process (`python -m assetbuild ...`), next to `python -c pass`, the floor (a Python
process that does nothing but `lstat` the same files: the manifest, the lock, every output
and reference), GNU make's `make -q` on an equivalent Makefile and, with ``--dvc``, `dvc
status` on an equivalent DVC pipeline, measured side by side: every round runs the commands
one after the other, so load from other work on the machine hits them alike, and the ratios
are taken per round. With ``--base DIR`` (a checkout of an older commit, e.g. made with
``git archive REV | tar -x -C DIR``) the old code's no-op build and check run in the same
rounds, on the same project, so "before -> after" is a paired ratio.

Before the timed rounds: a first build, a sleep past the 2 s racy-mtime window (files
younger than that are not trusted to the mtime+size memo), then a warm-up build that fills
the memos (the blueprint, the lock and the file hashes) and the bytecode caches. Every timed
build is checked to be a no-op (`--json`: N up to date, 0 generated).

The Makefile has one rule per output file, depending on the files it is made from (its
reference files and its upstream assets' outputs), with a `touch` recipe, and a phony `all`;
its files are empty stand-ins with increasing mtimes (make reads only mtimes).

Also printed: `-X importtime` of a no-op `assetbuild build` (the sum of the "self" column,
i.e. all module imports, median of the rounds), next to the same for `python -c pass`.

The DVC pipeline (``--dvc PATH-TO-dvc``, at the sizes of ``--dvc-sizes``, default 1000: its
setup runs `dvc commit` over every stage): one stage per output, depending on the same files
as the Makefile's rules, in a copy of the built project (`dvc init --no-scm`).

Measured processes run without PYTHONDONTWRITEBYTECODE in their environment (users have
bytecode caches; with it set, every run compiles every module again).

    python benchmarks/noop.py [--sizes 1000,5000,10000] [--repeat 7] [--base DIR] [--dvc PATH]
                              [--dvc-sizes 1000] [--figures FILE]

Targets (issue 20): no-op build and check, 1,000 assets <= 0.05 s; no-op build, 10,000
assets <= 0.20 s (issue 7's were 0.15 s and 1.0 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench import PYTHON, Report, Sample, assetbuild, bench_env, kilo, machine, run_timed, table
from synth import write_project

TARGETS_S = {1000: 0.05, 10000: 0.20}
CHECK_TARGETS_S = {1000: 0.05}
COMMAND = "python benchmarks/noop.py"


def rules_of(project: Path) -> list[tuple[str, list[str]]]:
    """(output, the files it is made from) for every output of the project, in build order."""
    from assetbuild.spec.blueprint import Blueprint

    blueprint = Blueprint.load(project / "assetbuild.toml", memo_dir=None)
    rules: list[tuple[str, list[str]]] = []
    for nid in blueprint.order:
        node = blueprint.nodes[nid]
        prereqs: list[str] = []
        for ref in node.references:
            if ref.path is not None:
                prereqs.append(ref.path)
            else:
                prereqs.extend(ref.paths or blueprint.nodes[ref.node].outputs)
        for output in node.outputs:
            rules.append((output, list(dict.fromkeys(prereqs))))
    return rules


def write_makefile(project: Path, folder: Path) -> int:
    """An equivalent Makefile in ``folder`` with up-to-date stand-in files; its rule count."""
    rules = rules_of(project)
    files = sorted({p for _, prereqs in rules for p in prereqs} - {o for o, _ in rules})
    base = time.time() - 3600
    for i, rel in enumerate(files + [o for o, _ in rules]):  # sources first, then outputs in build order
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        stamp = base + i * 0.001
        os.utime(path, (stamp, stamp))
    with open(folder / "Makefile", "w") as fh:
        fh.write(".PHONY: all\nall: " + " ".join(o for o, _ in rules) + "\n\n")
        for output, prereqs in rules:
            fh.write(f"{output}: {' '.join(prereqs)}\n\ttouch $@\n")
    return len(rules)


def write_file_list(project: Path, listing: Path) -> int:
    """The files a no-op rests on (manifest, lock, outputs, references), NUL-separated: what
    the floor process stats. Their count."""
    files = ["assetbuild.toml", "assetbuild.lock"]
    for output, prereqs in rules_of(project):
        files += [output, *prereqs]
    files = list(dict.fromkeys(files))
    listing.write_text("\0".join(files), encoding="utf-8")
    return len(files)


def floor_command(listing: Path) -> list[str]:
    return [PYTHON, "-c", f"import os\nfor p in open({str(listing)!r}).read().split('\\0'): os.lstat(p)"]


def write_dvc(project: Path, folder: Path, dvc: str, env: dict[str, str]) -> int:
    """An equivalent DVC pipeline in a copy of the built project at ``folder``: one stage per
    output, depending on the files it is made from, committed (dvc.lock written); its stages."""
    shutil.copytree(project, folder, ignore=shutil.ignore_patterns(".assetbuild"))
    rules = rules_of(project)
    with open(folder / "dvc.yaml", "w") as fh:
        fh.write("stages:\n")
        for i, (output, prereqs) in enumerate(rules):
            fh.write(f"  s{i:06d}:\n    cmd: cp {prereqs[0] if prereqs else output} {output}\n")
            if prereqs:
                fh.write("    deps:\n" + "".join(f"      - {p}\n" for p in prereqs))
            fh.write(f"    outs:\n      - {output}:\n          cache: false\n")
    run_timed([dvc, "init", "--no-scm", "-q"], folder, env)
    run_timed([dvc, "commit", "-f", "-q"], folder, env)
    return len(rules)


def import_total_us(stderr: str) -> int:
    """The sum of `-X importtime`'s self column: all the time spent importing modules."""
    total = 0
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            head = line[len("import time:"):].split("|")[0].strip()
            if head.isdigit():
                total += int(head)
    return total


def top_imports(stderr: str, n: int = 6) -> list[tuple[str, int]]:
    """The top-level imports with the largest cumulative time."""
    tops = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            if cumulative.strip().isdigit() and len(name) - len(name.lstrip()) == 1:
                tops.append((name.strip(), int(cumulative)))
    return sorted(tops, key=lambda t: -t[1])[:n]


def measure(n: int, repeat: int, work: Path, with_importtime: bool, base: Path | None = None,
            dvc: str | None = None) -> dict:
    project = work / f"p{n}"
    write_project(project, n)
    env = bench_env({"ASSETBUILD_CACHE_DIR": str(project / ".assetbuild")})
    base_env = bench_env({"ASSETBUILD_CACHE_DIR": str(project / ".assetbuild"), "PYTHONPATH": str(base)}) \
        if base is not None else None
    first = run_timed(assetbuild("build", "-j", "2"), project, env).wall_s
    time.sleep(2.1)  # past the racy-mtime window, so the warm-up's hashes (and the stamps) are kept
    run_timed(assetbuild("build", "--json"), project, env)  # warm-up: fills the memos, leaves the stamps
    run_timed(assetbuild("check"), project, env)
    if base_env is not None:
        run_timed(assetbuild("build", "--json"), project, base_env)
        run_timed(assetbuild("check"), project, base_env)
    make_dir = work / f"make{n}"
    rules = write_makefile(project, make_dir)
    run_timed(["make", "-q"], make_dir, env)  # warm-up (and: it is up to date, exit 0)
    listing = work / f"files{n}"
    stat_count = write_file_list(project, listing)
    dvc_dir = None
    if dvc is not None:
        dvc_dir = work / f"dvc{n}"
        write_dvc(project, dvc_dir, dvc, env)
        run_timed([dvc, "status", "-q"], dvc_dir, env)  # warm-up (and: up to date, exit 0)

    commands = {"python": ([PYTHON, "-c", "pass"], project, env),
                "floor": (floor_command(listing), project, env),
                "build": (assetbuild("build", "--json"), project, env),
                "check": (assetbuild("check"), project, env),
                "make": (["make", "-q"], make_dir, env)}
    if base_env is not None:
        commands["base build"] = (assetbuild("build", "--json"), project, base_env)
        commands["base check"] = (assetbuild("check"), project, base_env)
    if dvc_dir is not None:
        commands["dvc"] = ([str(dvc), "status", "-q"], dvc_dir, env)
    wall: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    for _ in range(repeat):
        runs = {key: run_timed(cmd, cwd, e) for key, (cmd, cwd, e) in commands.items()}
        for key in ("build", "base build"):
            if key in runs:
                summary = json.loads(runs[key].stdout)
                if summary["up_to_date"] != n or summary["generated"] or summary["restored"]:
                    raise SystemExit(f"the no-op {key} at {n} assets was not a no-op: {summary}")
        for key, run in runs.items():
            wall[key].append(run.wall_s)
            cpu[key].append(run.cpu_s)

    imports = None
    if with_importtime:
        totals, base, last = [], [], ""
        for _ in range(repeat):
            res = run_timed([PYTHON, "-X", "importtime", "-m", "assetbuild", "build"], project, env)
            totals.append(import_total_us(res.stderr) / 1e6)
            last = res.stderr
            res = run_timed([PYTHON, "-X", "importtime", "-c", "pass"], project, env)
            base.append(import_total_us(res.stderr) / 1e6)
        imports = {"build": Sample(totals), "python": Sample(base), "top": top_imports(last)}
    shutil.rmtree(project, ignore_errors=True)
    shutil.rmtree(make_dir, ignore_errors=True)
    if dvc_dir is not None:
        shutil.rmtree(dvc_dir, ignore_errors=True)

    def ratio(a: str, b: str) -> Sample | None:
        return Sample([x / y for x, y in zip(wall[a], wall[b])]) if a in wall and b in wall else None

    return {"n": n, "first": first, "rules": rules, "stats": stat_count,
            "samples": {k: Sample(v) for k, v in wall.items()}, "cpu": {k: Sample(v) for k, v in cpu.items()},
            "ratio_make": ratio("build", "make"), "ratio_python": ratio("build", "python"),
            "ratio_floor": ratio("build", "floor"), "check_floor": ratio("check", "floor"),
            "ratio_base": ratio("build", "base build"), "check_base": ratio("check", "base check"),
            "ratio_dvc": ratio("build", "dvc"), "imports": imports}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="No-op build and check at 1k, 5k and 10k assets.")
    parser.add_argument("--sizes", default="1000,5000,10000", help="comma-separated asset counts")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per size (default 7)")
    parser.add_argument("--base", type=Path, default=None,
                        help="a checkout of older code: its no-op build and check run in the same rounds")
    parser.add_argument("--dvc", default=None, help="a dvc executable: `dvc status` on an equivalent pipeline")
    parser.add_argument("--dvc-sizes", default="1000", help="the sizes dvc runs at (default 1000)")
    parser.add_argument("--figures", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    dvc_sizes = {int(s) for s in args.dvc_sizes.split(",")}
    print(f"no-op build / check; {machine()}; min / median of {args.repeat} rounds, seconds")
    report = Report("noop")
    results = []
    with tempfile.TemporaryDirectory(prefix="ab-noop-") as tmp:
        for i, n in enumerate(sizes):
            results.append(measure(n, args.repeat, Path(tmp), with_importtime=(i == 0), base=args.base,
                                   dvc=args.dvc if n in dvc_sizes else None))
    rows = []
    for r in results:
        s, c = r["samples"], r["cpu"]
        rows.append([f"{r['n']:,}", f"{r['first']:.1f}", s["build"], s["check"], s["python"], s["make"],
                     f"{r['ratio_make'].median:.2f}x", f"{r['ratio_python'].median:.1f}x",
                     f"{c['build'].median:.3f}", f"{c['check'].median:.3f}", f"{c['make'].median:.3f}"])
    print(table(["assets", "first build", "no-op build", "check", "python -c pass", "make -q",
                 "build/make", "build/python", "build CPU", "check CPU", "make CPU"], rows))
    print("(wall: min / median; ratios: median of per-round ratios; CPU: the process's user+sys, median)")
    rows = []
    for r in results:
        s = r["samples"]
        row = [f"{r['n']:,}", f"{r['stats']:,}", s["floor"], f"{r['ratio_floor'].median:.2f}x",
               f"{r['check_floor'].median:.2f}x"]
        row += [s["base build"], f"{r['ratio_base'].median:.2f}x", s["base check"], f"{r['check_base'].median:.2f}x"] \
            if r["ratio_base"] else ["", "", "", ""]
        row += [s["dvc"], f"{r['ratio_dvc'].median:.3f}x"] if r["ratio_dvc"] else ["", ""]
        rows.append(row)
    print(table(["assets", "files stat'ed", "floor (python + lstat)", "build/floor", "check/floor",
                 "base build", "build/base", "base check", "check/base", "dvc status", "build/dvc"], rows))
    rows = [[f"{r['n']:,}"] + [f"{r['cpu'][k].median:.3f}" if k in r["cpu"] else "" for k in
                               ("python", "floor", "build", "check", "base build", "base check", "make", "dvc")]
            for r in results]
    print(table(["CPU (user+sys, median)", "python -c pass", "floor", "build", "check", "base build", "base check",
                 "make -q", "dvc status"], rows))
    if len(results) > 1:
        base = results[0]
        growth = [f"{kilo(r['n'])}: build {r['samples']['build'].median / base['samples']['build'].median:.1f}x, "
                  f"check {r['samples']['check'].median / base['samples']['check'].median:.1f}x"
                  for r in results[1:]]
        print(f"growth from {kilo(base['n'])} (medians): " + "; ".join(growth))
    for r in results:
        n, s, k = r["n"], r["samples"], f"{kilo(r['n'])}"
        cmd = f"{COMMAND} --sizes {n}"
        report.add(f"no-op build {k}", s["build"].median, "s", cmd, at_most=TARGETS_S.get(n))
        report.add(f"check {k}", s["check"].median, "s", cmd, at_most=CHECK_TARGETS_S.get(n))
        report.add(f"floor (python -c pass + lstat of {r['stats']} files) {k}", s["floor"].median, "s", cmd)
        report.add(f"no-op build / floor {k}", r["ratio_floor"].median, "x", cmd)
        report.add(f"floor CPU time {k}", r["cpu"]["floor"].median, "s", cmd)
        report.add(f"python -c pass CPU time ({k} run)", r["cpu"]["python"].median, "s", cmd)
        report.add(f"check CPU time {k}", r["cpu"]["check"].median, "s", cmd)
        if r["ratio_base"]:
            report.add(f"no-op build / base's {k}", r["ratio_base"].median, "x", cmd)
            report.add(f"check / base's {k}", r["check_base"].median, "x", cmd)
            report.add(f"base's no-op build {k}", s["base build"].median, "s", cmd)
            report.add(f"base's no-op build CPU time {k}", r["cpu"]["base build"].median, "s", cmd)
            report.add(f"base's check {k}", s["base check"].median, "s", cmd)
        if r["ratio_dvc"]:
            report.add(f"dvc status {k}", s["dvc"].median, "s", cmd)
        report.add(f"make -q {k} ({r['rules']} rules)", s["make"].median, "s", cmd)
        report.add(f"python -c pass ({k} run)", s["python"].median, "s", cmd)
        report.add(f"no-op build / make -q {k}", r["ratio_make"].median, "x", cmd)
        report.add(f"no-op build CPU time {k}", r["cpu"]["build"].median, "s", cmd)
    imports = results[0]["imports"]
    if imports:
        extra = imports["build"].median - imports["python"].median
        print(f"\n-X importtime, no-op `assetbuild build` at {results[0]['n']:,} assets: "
              f"{imports['build'].median * 1000:.0f} ms of imports (min {imports['build'].min * 1000:.0f}); "
              f"`python -c pass` {imports['python'].median * 1000:.0f} ms; assetbuild's own share "
              f"{extra * 1000:.0f} ms")
        print("largest top-level imports (cumulative, last run): "
              + ", ".join(f"{name} {us / 1000:.1f} ms" for name, us in imports["top"]))
        report.add("import time of a no-op assetbuild build (-X importtime, all modules)", imports["build"].median * 1000,
                   "ms", f"{COMMAND} --sizes {results[0]['n']}")
        report.add("import time beyond python -c pass", extra * 1000, "ms", f"{COMMAND} --sizes {results[0]['n']}")
    report.print_verdicts()
    report.dump(args.figures)


if __name__ == "__main__":
    main()
