"""What leases cost an uncontended build (issue 18): the throughput benchmark's build (200
independent Seedream 4.0 assets against the ModelArk emulator, each generation taking 1 s,
``concurrency = 16``, `-j 24`) with a shared remote cache on loopback, leases on and off,
round by round side by side; median wall time of --repeat rounds each.

Two remotes: a ``file://`` folder, and moto's S3 server on 127.0.0.1 (a fresh prefix for
every build, so every asset is generated and uploaded). With leases on, each generated asset
costs three more remote requests (the conditional create, the record looked up again once
the lease is held, the conditional delete) plus one probe of the store per build (four
requests); the uploads and lookups the shared cache already made are the same in both
columns. With S3 the benchmark counts the requests moto answers, by method and folder, per
generated asset of the first build each way, and prints them.

    python benchmarks/leases.py [--assets 200] [--repeat 3] [--remotes file,s3] [--figures FILE]

Target (issue 18): leases on <= 1.05 x leases off.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench import ROOT, Report, Sample, assetbuild, bench_env, machine, run_timed, table
from synth import ark_manifest_text

sys.path.insert(0, str(ROOT))
from tests.fakes.ark import ArkEmulator  # noqa: E402
from tests.fakes.server import make_png  # noqa: E402

COMMAND = "python benchmarks/leases.py"
KEY = "bench-key"
LATENCY_S = 1.0
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_EC2_METADATA_DISABLED": "true"}


class Moto:
    """moto's S3 server on a free port of 127.0.0.1 (a thread of this process, as in the tests:
    moto's standalone server answers 500 to a few of a build's concurrent requests), one bucket."""

    def __init__(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        self.requests: collections.Counter[str] = collections.Counter()
        counted = self.requests

        class Counting(ThreadedMotoServer):
            def _server_entry(self) -> None:  # moto's app, behind a counter of what a build asks
                from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
                from werkzeug.serving import make_server

                app = DomainDispatcherApplication(create_backend_app)

                def counting(environ: dict, start_response: Any) -> Any:
                    counted[request_kind(environ)] += 1
                    return app(environ, start_response)

                self._server = make_server(self._ip_address, self._port, counting, True,
                                           request_handler=MotoRequestHandler)
                self._server_ready_event.set()
                self._server.serve_forever()

        self.server = Counting(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="bench")

    def stop(self) -> None:
        self.server.stop()


def request_kind(environ: dict) -> str:
    """One S3 request as "METHOD folder" (blobs, records, leases; "bucket" for the bucket
    itself, "+list" for a listing), for the request counts."""
    path = environ.get("PATH_INFO", "").strip("/").split("/")
    query = environ.get("QUERY_STRING", "")
    folder = next((part for part in path[2:] if part in ("blobs", "records", "leases")), "bucket")
    if folder == "leases" and ".probe-" in path[-1]:
        folder = "leases (probe)"
    return f"{environ.get('REQUEST_METHOD', '?')} {folder}{' +list' if 'list-type' in query else ''}"


class UniqueArk(ArkEmulator):
    """The Ark emulator serving a different small PNG for every result: two hundred uploads
    of one blob at once make moto answer 500, which would turn the remote off mid-build."""

    counter = itertools.count(1)

    def serve_result(self, data: bytes, ext: str = "png") -> str:
        n = next(self.counter)
        return super().serve_result(make_png(1024, 1024, (n % 251, n // 251 % 251, 40)), "png")


def build(emu: ArkEmulator, work: Path, n: int, jobs: int, concurrency: int, cache_table: str) -> float | None:
    """Wall seconds of one `assetbuild build` of ``n`` assets with ``cache_table``; None if the
    remote failed during it (the build then went on without it: not a figure of leases)."""
    project = work / f"p-{uuid.uuid4().hex[:8]}"
    project.mkdir(parents=True)
    text = ark_manifest_text(n, emu.base_url, concurrency=concurrency) + cache_table
    (project / "assetbuild.toml").write_text(text)
    env = bench_env({"ARK_API_KEY": KEY, "ASSETBUILD_CACHE_DIR": str(project / ".assetbuild"), **AWS})
    emu.fail_next("generate", delay_s=LATENCY_S, then_handle=True, times=n)
    run = run_timed(assetbuild("build", "-j", str(jobs), "--yes", "--json"), project, env)
    summary = json.loads(run.stdout)
    if summary["generated"] != n:
        raise SystemExit(f"expected {n} generated, got {summary}")
    warned = [line for line in run.stderr.splitlines() if line.startswith("warning") and "remote cache" in line]
    shutil.rmtree(project, ignore_errors=True)
    if warned:
        print(f"  (dropped a build: {warned[0][:160]})")
        return None
    return run.wall_s


def print_requests(counts: dict[bool, collections.Counter[str]], assets: int) -> None:
    """S3 requests per generated asset of one build with leases off and one with them on."""
    kinds = sorted(set().union(*counts.values()))
    rows = [[kind, *(f"{counts[on][kind] / assets:.2f}" if on in counts else "-" for on in (False, True))]
            for kind in kinds]
    rows.append(["total", *(f"{sum(counts[on].values()) / assets:.2f}" if on in counts else "-"
                            for on in (False, True))])
    print(table(["S3 requests per generated asset", "leases off", "leases on"], rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Lease overhead on an uncontended build with a loopback remote.")
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--remotes", default="file,s3")
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="[cache] timeout_s (default 30: a loaded machine makes moto slow)")
    parser.add_argument("--figures", type=Path, default=None)
    args = parser.parse_args(argv)
    print(f"lease overhead: {args.assets} assets, 1 s generations, concurrency {args.concurrency}, -j {args.jobs}; "
          f"{machine()}")
    report = Report("leases")
    emu = UniqueArk(api_key=KEY).start()
    moto = None
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="ab-leases-") as tmp:
            for kind in args.remotes.split(","):
                if kind == "s3":
                    moto = Moto()
                    base = (f'[cache]\nremote = "s3://bench/{{prefix}}"\nendpoint_url = "{moto.endpoint}"\n'
                            f"timeout_s = {args.timeout_s}\n")
                else:
                    folder = (Path(tmp) / "remote").as_uri()
                    base = f'[cache]\nremote = "{folder}/{{prefix}}"\ntimeout_s = {args.timeout_s}\n'
                walls: dict[bool, list[float]] = {True: [], False: []}
                counts: dict[bool, collections.Counter[str]] = {}  # S3 requests of the first build each way
                for round_ in range(args.repeat):
                    # side by side, round by round, first one then the other first: a noisy moment hits each alike
                    for on in ((True, False) if round_ % 2 == 0 else (False, True)):
                        for _attempt in range(3):  # moto under load sometimes answers 500: that build is run again
                            table_text = base.format(prefix=uuid.uuid4().hex[:8]) + f"leases = {str(on).lower()}\n"
                            before = collections.Counter(moto.requests) if moto is not None else None
                            wall = build(emu, Path(tmp), args.assets, args.jobs, args.concurrency, table_text)
                            if wall is not None:
                                walls[on].append(wall)
                                if moto is not None and before is not None and on not in counts:
                                    counts[on] = moto.requests - before
                                break
                if counts:
                    print_requests(counts, args.assets)
                on, off = Sample(walls[True]), Sample(walls[False])
                ratio = on.median / off.median
                rows.append([f"{kind} remote", off, on, f"{ratio:.3f}x"])
                cmd = f"{COMMAND} --remotes {kind}"
                report.add(f"{args.assets} assets, {kind} remote: wall with leases / without", ratio, "x", cmd,
                           at_most=1.05)
                if moto is not None:
                    moto.stop()
                    moto = None
    finally:
        emu.stop()
        if moto is not None:
            moto.stop()
    print(table(["build", "leases off: wall s (min / median)", "leases on: wall s (min / median)", "on / off"], rows))
    report.print_verdicts()
    report.dump(args.figures)


if __name__ == "__main__":
    main()
