"""The first build of synthetic projects of 1k, 5k and 10k assets (benchmarks/synth.py:
chains, matrix assets, reference files; local provider, 64x64), measured two ways.

1. Whole process: the wall time of `python -m assetbuild build` (default -j 4) on a fresh
   project with an empty cache, median of --repeat rounds; each round builds every size
   once, one after the other, so the 10k/1k ratio is taken within a round. Linear means
   10k <= 12 x 1k (issue 7: "did not finish in 30 minutes" before the journal).

2. In this process, once per size: assetbuild's own CPU time per generated asset,
   excluding the provider and image encoding. ``Project.load(directory, env=...,
   provider_factory=...)`` then ``.build(jobs=4)``, with a provider factory that wraps the
   real local provider and adds up the thread CPU time (``time.thread_time``) spent inside
   each ``generate()`` call (the render and its PNG encode run there, in the calling worker
   thread), and with ``assetbuild.store.imageinfo.inspect_image`` / ``as_png`` wrapped the same way
   (reading the header of each output and reference; ``as_png`` returns PNG bytes as they
   are). The whole load + build is timed with ``time.process_time()`` (all threads).

       own CPU per asset = (process CPU - CPU inside generate() - CPU inside imageinfo) / N

   Module imports are done before the clock starts (a fixed cost, not a per-asset one; see
   noop.py for import time). What is left is assetbuild's own work: loading and validating
   the manifest, expansion, the graph, fingerprints, hashing references, the cache (blob and
   index writes), atomic output writes, the journal and the lock, scheduling, and events.
   The wrapping is measurement only; the build runs its normal code paths.

Measured processes run without PYTHONDONTWRITEBYTECODE in their environment (users have
bytecode caches; with it set, every run compiles every module again).

With ``--base DIR`` (a checkout of older code) every round also builds each size with the
old code, right after the new, on a fresh project of its own: "no slower" is the median of
the per-round ratios new / old.

    python benchmarks/first_build.py [--sizes 1000,5000,10000] [--repeat 3] [--base DIR] [--figures FILE]

Targets: first build of 10,000 assets <= 11 x the time of 1,000 (issue 20; issue 7's was
12 x); assetbuild's own CPU per generated asset, excluding the provider and image encoding,
<= 5 ms.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from bench import Report, Sample, assetbuild, bench_env, kilo, machine, run_timed, table
from synth import write_project

COMMAND = "python benchmarks/first_build.py"
LINEAR_MAX = 11.0
OWN_CPU_MS_MAX = 5.0


class ThreadCpu:
    """CPU time of the calling threads inside wrapped functions, added up by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._mutex = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                with self._mutex:
                    self.seconds[name] = self.seconds.get(name, 0.0) + spent
                    self.calls[name] = self.calls.get(name, 0) + 1

        return timed


class TimedProvider:
    """The real provider, with the CPU time of its ``generate`` counted."""

    def __init__(self, inner: Any, cpu: ThreadCpu):
        self._inner = inner
        self.generate = cpu.wrap("provider", inner.generate)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def own_cpu(project_dir: Path, n: int, jobs: int) -> dict[str, float]:
    """assetbuild's own CPU per generated asset, measured in this process."""
    import assetbuild.store.imageinfo as imageinfo
    from assetbuild.api import Project, default_provider_factory
    for module in ("spec.expand", "spec.graph", "spec.manifest", "providers.local"):  # imports are not per-asset work
        importlib.import_module(f"assetbuild.{module}")

    cpu = ThreadCpu()
    originals = imageinfo.inspect_image, imageinfo.as_png
    imageinfo.inspect_image = cpu.wrap("imageinfo", originals[0])
    imageinfo.as_png = cpu.wrap("imageinfo", originals[1])

    def factory(name: str, config: Any, *, env: Any, clock: Any) -> Any:
        return TimedProvider(default_provider_factory(name, config, env=env, clock=clock), cpu)

    env = bench_env({"ASSETBUILD_CACHE_DIR": str(project_dir / ".assetbuild")})
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        project = Project.load(project_dir, env=env, provider_factory=factory)
        load_cpu = time.process_time() - cpu0
        report = project.build(jobs=jobs)
        project.close()
        total_cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        imageinfo.inspect_image, imageinfo.as_png = originals
    generated = report.count("generated")
    if generated != n:
        raise SystemExit(f"in-process build generated {generated} of {n}")
    provider, images = cpu.seconds.get("provider", 0.0), cpu.seconds.get("imageinfo", 0.0)
    return {"wall": wall, "total": total_cpu, "load": load_cpu, "provider": provider, "imageinfo": images,
            "own_ms": (total_cpu - provider - images) / n * 1000,
            "own_with_images_ms": (total_cpu - provider) / n * 1000}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="First build at 1k, 5k and 10k assets; own CPU per asset.")
    parser.add_argument("--sizes", default="1000,5000,10000", help="comma-separated asset counts")
    parser.add_argument("--repeat", type=int, default=3, help="whole-process rounds (default 3)")
    parser.add_argument("--jobs", type=int, default=4, help="-j of the builds (default 4, the CLI's default)")
    parser.add_argument("--base", type=Path, default=None, help="a checkout of older code, built in the same rounds")
    parser.add_argument("--no-inprocess", action="store_true", help="skip the in-process own-CPU builds")
    parser.add_argument("--figures", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"first build, local 64x64; {machine()}; -j {args.jobs}")
    walls: dict[int, list[float]] = {n: [] for n in sizes}
    cpus: dict[int, list[float]] = {n: [] for n in sizes}
    ratios: list[float] = []
    base_walls: dict[int, list[float]] = {n: [] for n in sizes}
    base_cpus: dict[int, list[float]] = {n: [] for n in sizes}
    base_ratios: list[float] = []
    inproc: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ab-first-") as tmp:
        for r in range(args.repeat):
            for n in sizes:
                project = Path(tmp) / f"r{r}-{n}"
                write_project(project, n)
                env = bench_env({"ASSETBUILD_CACHE_DIR": str(project / ".assetbuild")})
                run = run_timed(assetbuild("build", "-j", str(args.jobs)), project, env)
                walls[n].append(run.wall_s)
                cpus[n].append(run.cpu_s)
                shutil.rmtree(project, ignore_errors=True)
                if args.base is not None:
                    project = Path(tmp) / f"r{r}-{n}-base"
                    write_project(project, n)
                    env = bench_env({"ASSETBUILD_CACHE_DIR": str(project / ".assetbuild"),
                                     "PYTHONPATH": str(args.base)})
                    old = run_timed(assetbuild("build", "-j", str(args.jobs)), project, env)
                    base_walls[n].append(old.wall_s)
                    base_cpus[n].append(old.cpu_s)
                    shutil.rmtree(project, ignore_errors=True)
            if len(sizes) > 1:
                ratios.append(walls[sizes[-1]][-1] / walls[sizes[0]][-1])
                if args.base is not None:
                    base_ratios.append(base_walls[sizes[-1]][-1] / base_walls[sizes[0]][-1])
        for n in ([] if args.no_inprocess else sizes):
            project = Path(tmp) / f"in-{n}"
            write_project(project, n)
            inproc[n] = own_cpu(project, n, args.jobs)
            shutil.rmtree(project, ignore_errors=True)

    base = sizes[0]
    rows = []
    for n in ([] if args.no_inprocess else sizes):
        w, ip = Sample(walls[n]), inproc[n]
        rows.append([f"{n:,}", w, f"{Sample(cpus[n]).median:.1f}", f"{w.median / Sample(walls[base]).median:.1f}x",
                     f"{w.median / n * 1000:.1f}", f"{ip['total']:.1f}", f"{ip['load']:.2f}", f"{ip['provider']:.1f}",
                     f"{ip['imageinfo']:.2f}", f"{ip['own_ms']:.2f}", f"{ip['own_with_images_ms']:.2f}"])
    if rows:
        print(table(["assets", "wall s (min / median)", "process CPU s", f"vs {kilo(base)}", "ms/asset",
                     "in-process CPU s", "of which load", "provider", "imageinfo", "own ms/asset", "own+imageinfo"],
                    rows))
        print(f"(whole process: {args.repeat} round(s); in-process: one build per size; "
              "own ms/asset = (CPU - provider - imageinfo) / N)")
    report = Report("first_build")
    cmd = f"{COMMAND} --sizes {','.join(map(str, sizes))}"
    if args.no_inprocess:
        print(table(["assets", "wall s (min / median)", "process CPU s"],
                    [[f"{n:,}", Sample(walls[n]), f"{Sample(cpus[n]).median:.1f}"] for n in sizes]))
    if args.base is not None:
        print(table(["assets", "old code: wall s (min / median)", "its process CPU s",
                     "new / old (median of per-round ratios)"],
                    [[f"{n:,}", Sample(base_walls[n]), f"{Sample(base_cpus[n]).median:.1f}",
                      f"{Sample([a / b for a, b in zip(walls[n], base_walls[n])]).median:.2f}x"] for n in sizes]))
        if base_ratios:
            print(f"old code: {kilo(sizes[-1])} / {kilo(base)} = {Sample(base_ratios).median:.1f}x (median of rounds)")
        for n in sizes:
            report.add(f"first build {kilo(n)} new / old", Sample([a / b for a, b in zip(walls[n], base_walls[n])]).median,
                       "x", cmd + f" --base {args.base}")
    for n in sizes:
        report.add(f"first build {kilo(n)} (wall, median)", Sample(walls[n]).median, "s", cmd)
    if ratios:
        report.add(f"first build {kilo(sizes[-1])} / {kilo(base)} (median of per-round ratios)",
                   Sample(ratios).median, "x", cmd, at_most=LINEAR_MAX if (base, sizes[-1]) == (1000, 10000) else None)
    for n in ([] if args.no_inprocess else sizes):
        report.add(f"own CPU per generated asset {kilo(n)}", inproc[n]["own_ms"], "ms", cmd,
                   at_most=OWN_CPU_MS_MAX)
    report.print_verdicts()
    report.dump(args.figures)


if __name__ == "__main__":
    main()
