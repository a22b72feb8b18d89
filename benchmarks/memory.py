"""Peak memory of a build that downloads 2K images: a whole `python -m assetbuild build`
process against the ModelArk emulator (tests/fakes/ark.py, real HTTP on 127.0.0.1, started
in this process) making Seedream 4.0 "2K" images (2048x2048 JPEGs, converted to PNG for the
outputs). The key is set in the environment (ARK_API_KEY=bench-key) and base_url points at
the emulator, so nothing leaves the machine.

Peak RSS is the build process's own ``ru_maxrss``, read with ``os.wait4`` on its pid (exact
for that one process; the emulator lives in this process and is not counted). It is taken at
100 and 500 assets (a peak that grows with N would mean images are held longer than
needed), at the CLI's default -j 4 / concurrency 4 and at -j 16 / concurrency 16 (more
images in flight at once).

The build process runs without PYTHONDONTWRITEBYTECODE in its environment (users have
bytecode caches; with it set, every run compiles every module again).

    python benchmarks/memory.py [--sizes 100,500] [--jobs 4,16] [--figures FILE]

Target (issue 7): peak RSS during a 500-asset 2K build <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench import ROOT, Report, assetbuild, bench_env, machine, run_timed, table
from synth import ark_manifest_text

sys.path.insert(0, str(ROOT))
from tests.fakes.ark import ArkEmulator  # noqa: E402

COMMAND = "python benchmarks/memory.py"
KEY = "bench-key"
TARGET_MB = 300.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Peak RSS of a 2K build against the Ark emulator.")
    parser.add_argument("--sizes", default="100,500", help="comma-separated asset counts")
    parser.add_argument("--jobs", default="4,16", help="comma-separated -j values (concurrency set alike)")
    parser.add_argument("--size", default="2K", help="the assets' size (default 2K)")
    parser.add_argument("--figures", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    print(f"peak RSS of a {args.size} build against the Ark emulator; {machine()}")
    report = Report("memory")
    rows = []
    emu = ArkEmulator(api_key=KEY).start()
    try:
        with tempfile.TemporaryDirectory(prefix="ab-mem-") as tmp:
            for jobs in (int(j) for j in args.jobs.split(",")):
                for n in (int(s) for s in args.sizes.split(",")):
                    project = Path(tmp) / f"p{n}-j{jobs}"
                    project.mkdir()
                    (project / "assetbuild.toml").write_text(
                        ark_manifest_text(n, emu.base_url, size=args.size, concurrency=jobs))
                    env = bench_env({"ARK_API_KEY": KEY, "ASSETBUILD_CACHE_DIR": str(project / ".assetbuild")})
                    run = run_timed(assetbuild("build", "-j", str(jobs), "--yes", "--json"), project, env)
                    summary = json.loads(run.stdout)
                    if summary["generated"] != n:
                        raise SystemExit(f"expected {n} generated, got {summary}")
                    rows.append([f"{n}", f"-j {jobs}, concurrency {jobs}", f"{run.maxrss_mb:.0f}", f"{run.wall_s:.1f}",
                                 f"{run.cpu_s:.1f}"])
                    report.add(f"peak RSS, {n} assets {args.size}, -j {jobs}", run.maxrss_mb, "MB",
                               f"{COMMAND} --sizes {n} --jobs {jobs}", at_most=TARGET_MB if n >= 500 else None)
                    shutil.rmtree(project, ignore_errors=True)
    finally:
        emu.stop()
    print(table(["assets", "parallelism", "peak RSS MB", "wall s", "CPU s"], rows))
    report.print_verdicts()
    report.dump(args.figures)


if __name__ == "__main__":
    main()
