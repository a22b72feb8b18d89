"""The fault soak on every host (issue 6): a 200-asset build against each emulator injecting
seeded random faults (10% 500s, 5% 429s with Retry-After, 2% connections dropped after billing,
2% timeouts, 1% corrupt images), rerun with -k until all is built. Prints, per host: builds
needed, requests the host saw, the client's retries, faults injected, billed jobs and the extra
ones next to the drops after billing on the submit route (the bound on hosts without an
idempotency key), and wall time. The same engine as tests/test_fault_soak.py.

    python benchmarks/fault_soak.py [--assets 200] [--seed 6] [--hosts modelark,replicate]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.soak import EMULATORS, run_soak  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--hosts", default=",".join(EMULATORS))
    args = parser.parse_args()
    header = (f"{'host':<11}{'builds':>7}{'requests':>9}{'retries':>8}{'500':>5}{'429':>5}{'drop':>5}"
              f"{'t/o':>5}{'bad':>5}{'billed':>7}{'extra':>6}{'≤drops':>7}{'ok':>4}{'wall s':>8}")
    print(header)
    print("-" * len(header))
    for host in args.hosts.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            f = run_soak(host, Path(tmp), assets=args.assets, seed=args.seed)
        i = f.injected
        print(f"{host:<11}{f.builds:>7}{f.requests:>9}{f.retries:>8}{i.get('500', 0):>5}{i.get('429', 0):>5}"
              f"{i.get('drop', 0):>5}{i.get('timeout', 0):>5}{i.get('corrupt', 0):>5}{f.billed:>7}"
              f"{f.extra_billed:>6}{f.submit_drops + f.late_submits:>7}{'yes' if f.outputs_ok else 'NO':>4}"
              f"{f.wall_s:>8.1f}")


if __name__ == "__main__":
    main()
