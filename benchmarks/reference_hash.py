"""A 200 MB reference set is hashed once; later runs only stat it.

The project: 20 reference files of 10 MB each (PNGs of random noise, stored uncompressed,
1826x1826 RGB) under refs/, and 40 local 64x64 assets, each referencing one of them (two
assets per file). The files' mtimes are set an hour back, as for files that were not just
written: a file younger than 2 s is re-hashed on purpose (the racy-mtime window), which would
hide what is measured here.

Each run is a fresh ``Project.load(...)`` in this process (what a new `assetbuild` process
does; the file-hash memo lives in .assetbuild/), and the table shows the files it hashed
(read, rather than answered from the mtime+size memo: ``project.hasher.hashed`` before and
after each ``hasher._read`` call, the calls serialised by a lock for the count), references
and outputs apart, and its wall time:

    1. plan (nothing known yet: every reference is hashed)
    2. plan, 3. plan (only stats)
    4. build (renders the 40 assets; the references are read to be sent, as they must be,
       but not hashed again by the planner); then a 2.1 s sleep, so the new outputs are
       past the racy-mtime window as a later run would find them
    5. plan after the build, 6. no-op build
    7. plan after `touch` of one reference (same bytes, new mtime: that file alone is hashed)

then the same no-op `python -m assetbuild build` and `plan` as whole processes, and, for
scale, hashing the 200 MB once with hashlib in this process.

Measured processes run without PYTHONDONTWRITEBYTECODE in their environment (users have
bytecode caches; with it set, every run compiles every module again).

    python benchmarks/reference_hash.py [--files 20] [--mb 10] [--figures FILE]

Target (issue 7): a 200 MB reference set is hashed once; later runs only stat it.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import struct
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from bench import Report, assetbuild, bench_env, machine, run_timed, table

COMMAND = "python benchmarks/reference_hash.py"
ASSETS_PER_FILE = 2


def noise_png(side: int, seed: int) -> bytes:
    """A ``side`` x ``side`` RGB PNG of random noise, stored (zlib level 0): 3 x side^2 bytes."""
    rng = random.Random(seed)
    raw = b"".join(b"\0" + rng.randbytes(3 * side) for _ in range(side))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")


def write_project(root: Path, files: int, mb: float) -> int:
    """The reference set and a manifest using it; the set's size in bytes."""
    side = int(math.sqrt(mb * 1e6 / 3))
    (root / "refs").mkdir(parents=True)
    old = time.time() - 3600
    total = 0
    for k in range(files):
        path = root / "refs" / f"big-{k:02d}.png"
        path.write_bytes(noise_png(side, k))
        os.utime(path, (old, old))
        total += path.stat().st_size
    lines = ['[project]\nname = "reference-hash"\n\n[defaults]\nsize = "64x64"\n\n']
    for i in range(files * ASSETS_PER_FILE):
        lines.append(f'[assets.r{i:03d}]\nprompt = "asset {i} after reference {i % files}"\n'
                     f'references = ["refs/big-{i % files:02d}.png"]\n\n')
    (root / "assetbuild.toml").write_text("".join(lines))
    return total


def count_reads(hasher: Any) -> list[str]:
    """The paths ``hasher`` reads (not answered from its memo), from now on, whether asked
    through ``hash`` (outputs) or ``reference`` (reference images): both go through ``_read``.
    Measurement only: a lock around each call, so that ``hasher.hashed`` before and after
    names this call's read."""
    read: list[str] = []
    inner, mutex = hasher._read, threading.Lock()

    def _read(rel: str, max_pixels: Any) -> Any:
        with mutex:
            before = hasher.hashed
            found = inner(rel, max_pixels)
            if hasher.hashed != before:
                read.append(rel)
            return found

    hasher._read = _read
    return read


def in_process(root: Path, env: dict[str, str], what: str) -> tuple[list[str], float, str]:
    """One run as a new process would make it: the files it hashed, its wall time, and what
    it decided."""
    from assetbuild.api import Project

    start = time.perf_counter()
    project = Project.load(root, env=env)
    read = count_reads(project.hasher)
    try:
        if what == "plan":
            decisions = project.plan().decisions
            summary = ", ".join(f"{sum(1 for d in decisions if d.action.value == a)} {a}"
                                for a in ("generate", "up-to-date") if any(d.action.value == a for d in decisions))
        else:
            report = project.build()
            summary = f"{report.count('generated')} generated, {report.count('up-to-date')} up to date"
        return read, time.perf_counter() - start, summary
    finally:
        project.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A 200 MB reference set is hashed once.")
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mb", type=float, default=10.0, help="size of each reference file in MB (default 10)")
    parser.add_argument("--figures", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    print(f"reference set hashing; {machine()}")
    report = Report("reference_hash")
    with tempfile.TemporaryDirectory(prefix="ab-refs-") as tmp:
        root = Path(tmp)
        total = write_project(root, args.files, args.mb)
        env = bench_env({"ASSETBUILD_CACHE_DIR": str(root / ".assetbuild")})
        runs = [("plan (first)", "plan"), ("plan", "plan"), ("plan", "plan"), ("build", "build"),
                ("plan after the build", "plan"), ("no-op build", "build")]
        rows = []
        hashed_later = 0
        for i, (label, what) in enumerate(runs, 1):
            read, wall, summary = in_process(root, env, what)
            refs = sum(1 for rel in read if rel.startswith("refs/"))
            rows.append([f"{i}. {label}", refs, len(read) - refs, f"{wall:.2f}", summary])
            if i == 1:
                first_hashed, first_wall = refs, wall
            else:
                hashed_later += refs
            if what == "build":
                time.sleep(2.1)  # let the new outputs age past the racy-mtime window, as any later run finds them
        touched = root / "refs" / "big-00.png"
        os.utime(touched, (time.time() - 60, time.time() - 60))
        read, wall, summary = in_process(root, env, "plan")
        hashed = sum(1 for rel in read if rel.startswith("refs/"))
        rows.append([f"{len(runs) + 1}. plan after touch refs/big-00.png", hashed, len(read) - hashed, f"{wall:.2f}",
                     summary])
        print(f"{args.files} reference files, {total / 1e6:.0f} MB, {args.files * ASSETS_PER_FILE} assets")
        print(table(["run (in process, fresh Project.load)", "references hashed", "outputs hashed", "wall s",
                     "decided"], rows))

        noop = run_timed(assetbuild("build", "--json"), root, env)
        plan = run_timed(assetbuild("plan", "--json"), root, env)
        start = time.perf_counter()
        for path in sorted((root / "refs").iterdir()):
            hashlib.sha256(path.read_bytes()).hexdigest()
        hash_all = time.perf_counter() - start
        print(f"whole process: no-op build {noop.wall_s:.2f} s, plan {plan.wall_s:.2f} s; "
              f"sha256 of all {total / 1e6:.0f} MB in this process: {hash_all:.2f} s")
    report.add("reference files hashed by the first plan", first_hashed, "files", COMMAND)
    report.add("first plan wall (hashes the set)", first_wall, "s", COMMAND)
    report.add("reference files hashed by later runs (plan x2, build, plan, no-op build)", hashed_later, "files",
               COMMAND, at_most=0)
    report.add("reference files hashed after touching one", hashed, "files", COMMAND, at_most=1)
    report.add("no-op build wall with the 200 MB set (whole process)", noop.wall_s, "s", COMMAND)
    report.print_verdicts()
    report.dump(args.figures)


if __name__ == "__main__":
    main()
