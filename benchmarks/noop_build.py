"""No-op build on a generated N-asset manifest (default 1,000): wall time of
`assetbuild build` when nothing changed, next to the Python interpreter's own start-up
measured in the same run, so the figure reads as a ratio on any machine.

    python benchmarks/noop_build.py [--assets 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def manifest(n: int) -> str:
    lines = ['[project]\nname = "bench"\n', '[defaults]\nsize = "16x16"\n']
    for i in range(n):
        lines.append(f'[assets.a{i:04d}]\nprompt = "asset number {i}"\n')
        if i % 10 and i > 0:  # nine in ten depend on the one before: a realistic chain-heavy graph
            lines.append(f'references = ["@a{i - 1:04d}"]\n')
    return "".join(lines)


def timed(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "assetbuild.toml").write_text(manifest(args.assets))
        env = {**os.environ, "ASSETBUILD_CACHE_DIR": str(root / ".assetbuild")}
        cli = [sys.executable, "-m", "assetbuild", "build"]
        first = timed(cli, root, env, 1)[0]
        time.sleep(2.1)  # let outputs age past the racy-mtime window so the memo keeps them
        warm = timed(cli, root, env, 1)[0]  # fills the mtime+size memo
        noop = timed(cli, root, env, args.repeat)
        python = timed([sys.executable, "-c", "pass"], root, env, args.repeat)
        check = timed([sys.executable, "-m", "assetbuild", "check"], root, env, args.repeat)
        med = statistics.median
        print(f"assets: {args.assets}")
        print(f"first build (renders {args.assets} images): {first:.2f} s")
        print(f"second build (re-hashes outputs once, fills memo): {warm:.3f} s")
        print(f"no-op build, median of {args.repeat}: {med(noop):.3f} s (min {min(noop):.3f} s)")
        print(f"check, median of {args.repeat}: {med(check):.3f} s")
        print(f"python -c pass, median of {args.repeat}: {med(python):.3f} s")
        print(f"no-op build / interpreter start-up: {med(noop) / med(python):.1f}x")


if __name__ == "__main__":
    main()
