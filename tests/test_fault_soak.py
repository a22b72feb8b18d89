"""The fault soak (issue 6): a 200-asset build against an emulator injecting, at random (seeded),
10% HTTP 500s, 5% 429s with Retry-After, 2% connections dropped after the host billed, 2%
timeouts (no answer for 1 s against a 0.3 s client timeout) and 1% corrupt images, rerun with
``-k`` until everything is built. It must complete; every output must decode and match the lock
(a corrupt image never becomes an output); and the billed jobs beyond one per asset must be 0 on
Apiframe (idempotency keys) and no more than the submits dropped after billing elsewhere (a host
without idempotency cannot tell a billed submit that dropped from one that never arrived).

Three hosts run here (Ark's synchronous API, Replicate's asynchronous one, Apiframe's idempotent
one); ``python benchmarks/fault_soak.py`` runs all seven and prints the table. ``pytest -s -k
fault_soak`` shows each host's figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.soak import IDEMPOTENT, run_soak

ASSETS = 200
MAX_BUILDS = 15


@pytest.mark.slow
@pytest.mark.parametrize("host", ["modelark", "replicate", "apiframe"])
def test_fault_soak(tmp_path: Path, host: str) -> None:
    figures = run_soak(host, tmp_path, assets=ASSETS, max_builds=MAX_BUILDS)
    print(f"\n{figures.line()}")

    assert figures.built == ASSETS and figures.builds < MAX_BUILDS, figures.failures[-5:]
    assert figures.outputs_ok  # every output decodes in full and has the bytes and size the lock records
    assert figures.injected.get("500", 0) and figures.injected.get("429", 0) and figures.injected.get("drop", 0)
    assert figures.retries > 0
    if host in IDEMPOTENT:
        assert figures.extra_billed == 0
    else:
        assert 0 <= figures.extra_billed <= figures.submit_drops + figures.late_submits
    # a failure is always one line saying what to do, never a traceback (the CLI would have raised)
    assert all("\n" not in line for line in figures.failures)
