"""Throughput against a host that answers in 1 s: a whole `python -m assetbuild build`
process against the ModelArk emulator (tests/fakes/ark.py, real HTTP on 127.0.0.1, started
in this process), whose generation route is made to take 1 s per request
(``fail_next("generate", delay_s=1.0, then_handle=True)``; result downloads are not
delayed). The assets are independent Seedream 4.0 text-to-image assets at "1K"
(1024x1024, a size the model takes); the key is set in the environment
(ARK_API_KEY=bench-key, what the emulator expects) and base_url points at the emulator,
so nothing leaves the machine.

1. Concurrency: 200 assets, ``concurrency = 16``, built with `-j 16` and with `-j 24`,
   round by round side by side. The figure is the wall time of the whole process over the
   ideal 200 x 1 s / 16 = 12.5 s (so start-up, planning, downloads, PNG conversion and the
   lock write all count against it); median of --repeat rounds. Also shown: the most requests
   the emulator saw in flight at once. `-j` counts assets at once, each through its request,
   download, check and caching; ``concurrency`` counts requests at the host. At `-j 16` an
   asset's slot is busy while its image comes down and is checked, so the build's own slots
   are the bound; at `-j 24` the host's 16 are (README: set -j about 1.5 x concurrency).

2. Rate limit: ``requests_per_minute = 60`` with 75 assets (more than one minute's
   allowance, so the limiter must hold some back; about 62 s). The emulator records each
   request's arrival time t_1..t_N. The limiter allows ``rpm`` request starts in any 60 s
   window, so request k (k > rpm) can start at the earliest 60 s after request k - rpm; the
   achieved rate is rpm * 60 s / mean(t_k - t_{k-rpm}) over every k > rpm (100% when
   every held-back request starts as soon as the window lets it). Also shown: the most
   requests that arrived at the emulator in any 60 s window (README promises at most rpm
   starts in any 60 s window) and the shortest t_k - t_{k-rpm}.

The build process runs without PYTHONDONTWRITEBYTECODE in its environment (users have
bytecode caches; with it set, every run compiles every module again).

    python benchmarks/throughput.py [--assets 200] [--jobs 16,24] [--repeat 3] [--rpm 60 --rpm-assets 75] [--figures FILE]

Targets (issue 7): wall <= 1.1 x the ideal; achieved rate >= 95% of requests_per_minute.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench import ROOT, Report, Run, Sample, assetbuild, bench_env, machine, run_timed, table
from synth import ark_manifest_text

sys.path.insert(0, str(ROOT))
from tests.fakes.ark import ArkEmulator  # noqa: E402

COMMAND = "python benchmarks/throughput.py"
KEY = "bench-key"
LATENCY_S = 1.0


def build_against(emu: ArkEmulator, work: Path, n: int, jobs: int, concurrency: int,
                  rpm: int | None) -> tuple[Run, list[float]]:
    """Build ``n`` assets against ``emu`` (each generation taking LATENCY_S): the process's
    run and the arrival times of the generation requests."""
    project = work / f"p{n}-{rpm}"
    project.mkdir(parents=True)
    (project / "assetbuild.toml").write_text(ark_manifest_text(n, emu.base_url, concurrency=concurrency,
                                                               requests_per_minute=rpm))
    env = bench_env({"ARK_API_KEY": KEY, "ASSETBUILD_CACHE_DIR": str(project / ".assetbuild")})
    with emu._lock:  # a fresh log for this build
        emu.requests.clear()
        emu.max_in_flight = 0
    emu.fail_next("generate", delay_s=LATENCY_S, then_handle=True, times=n)
    run = run_timed(assetbuild("build", "-j", str(jobs), "--yes", "--json"), project, env)
    summary = json.loads(run.stdout)
    if summary["generated"] != n:
        raise SystemExit(f"expected {n} generated, got {summary}")
    arrivals = sorted(r.at for r in emu.calls("generate"))
    if len(arrivals) != n:
        raise SystemExit(f"expected {n} generation requests, the emulator saw {len(arrivals)}")
    shutil.rmtree(project, ignore_errors=True)
    return run, arrivals


def most_in_window(arrivals: list[float], window_s: float = 60.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(arrivals):
        while t - arrivals[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Throughput against a 1 s emulator; requests_per_minute.")
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16, help="the provider's concurrency (default 16)")
    parser.add_argument("--jobs", default=None, help="-j values, comma-separated (default: concurrency and 1.5 x concurrency)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the concurrency build (default 3)")
    parser.add_argument("--rpm", type=int, default=60, help="requests_per_minute (default 60; 0 skips)")
    parser.add_argument("--rpm-assets", type=int, default=75, help="assets of the rate-limited build (> rpm)")
    parser.add_argument("--figures", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    print(f"throughput against the Ark emulator (generation takes {LATENCY_S:g} s); {machine()}")
    report = Report("throughput")
    emu = ArkEmulator(api_key=KEY).start()
    try:
        with tempfile.TemporaryDirectory(prefix="ab-tp-") as tmp:
            if args.repeat:
                ideal = args.assets * LATENCY_S / args.concurrency
                jobs = ([int(j) for j in args.jobs.split(",")] if args.jobs
                        else [args.concurrency, args.concurrency * 3 // 2])
                runs: dict[int, list[tuple[Run, list[float], int]]] = {j: [] for j in jobs}
                for _ in range(args.repeat):
                    for j in jobs:  # side by side, round by round: a noisy moment hits each alike
                        run, arrivals = build_against(emu, Path(tmp), args.assets, j, args.concurrency, None)
                        runs[j].append((run, arrivals, emu.max_in_flight))
                rows = []
                for j in jobs:
                    w = Sample([run.wall_s for run, _, _ in runs[j]])
                    spans = [arrivals[-1] + LATENCY_S - arrivals[0] for _, arrivals, _ in runs[j]]
                    rows.append([f"{args.assets} assets, concurrency {args.concurrency}, -j {j}", w, f"{ideal:.1f}",
                                 f"{w.median / ideal:.2f}x", f"{Sample(spans).median:.1f}",
                                 max(peak for _, _, peak in runs[j]),
                                 f"{Sample([run.cpu_s for run, _, _ in runs[j]]).median:.1f}"])
                    cmd = f"{COMMAND} --assets {args.assets} --jobs {j} --rpm 0"
                    report.add(f"{args.assets} assets at concurrency {args.concurrency}, -j {j}: wall / ideal",
                               w.median / ideal, "x", cmd, at_most=1.1)
                    report.add(f"{args.assets} assets at concurrency {args.concurrency}, -j {j}: wall", w.median, "s", cmd)
                print(table(["build", "wall s (min / median)", "ideal s", "wall / ideal", "requests span s",
                             "most in flight", "process CPU s"], rows))
                print("(requests span: first generation request's arrival to the last one's answer)")

            if args.rpm:
                if args.rpm_assets <= args.rpm:
                    raise SystemExit("--rpm-assets must exceed --rpm for the limiter to act")
                run, arrivals = build_against(emu, Path(tmp), args.rpm_assets, args.concurrency, args.concurrency,
                                              args.rpm)
                gaps = [arrivals[k] - arrivals[k - args.rpm] for k in range(args.rpm, len(arrivals))]
                rate = args.rpm * 60.0 / (sum(gaps) / len(gaps))
                worst = args.rpm * 60.0 / max(gaps)
                print(table(["rate-limited build", "wall s", "achieved rate /min", "of rpm", "worst", "most in any 60 s",
                             "shortest t_k - t_{k-rpm} s"],
                            [[f"{args.rpm_assets} assets, requests_per_minute {args.rpm}", f"{run.wall_s:.1f}", f"{rate:.1f}",
                              f"{rate / args.rpm:.1%}", f"{worst / args.rpm:.1%}", most_in_window(arrivals),
                              f"{min(gaps):.4f}"]]))
                print("(arrival times at the emulator; the limiter counts request starts in the client)")
                cmd = f"{COMMAND} --repeat 0 --rpm {args.rpm} --rpm-assets {args.rpm_assets}"
                report.add(f"achieved rate with requests_per_minute = {args.rpm}", rate / args.rpm * 100, "%", cmd,
                           at_least=95)
                report.add(f"most requests arriving in any 60 s window (README: at most rpm = {args.rpm})",
                           most_in_window(arrivals), "requests", cmd, at_most=args.rpm)
    finally:
        emu.stop()
    report.print_verdicts()
    report.dump(args.figures)


if __name__ == "__main__":
    main()
