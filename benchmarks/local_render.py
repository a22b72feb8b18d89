"""The local provider's render time per image at 1K, 2K and 4K, next to a plain Pillow
PNG encode of a blank image of the same size measured in the same run.

    python benchmarks/local_render.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from PIL import Image

from assetbuild.providers.base import GenerationRequest, MemoryJobStore
from assetbuild.providers.local import LocalProvider


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    provider = LocalProvider()
    for side in (1024, 2048, 4096):
        request = GenerationRequest("bench", "0" * 64, "A fox on a mountain ridge at golden hour, wide hero banner",
                                    "local", side, side, f"{side}x{side}")
        render = best(lambda: provider.generate(request, MemoryJobStore()), args.repeat)

        def blank() -> None:
            Image.new("RGB", (side, side), (200, 80, 40)).save(io.BytesIO(), format="PNG", compress_level=1)

        encode = best(blank, args.repeat)
        print(f"{side}x{side}: render {render * 1000:.0f} ms (median of {args.repeat}); "
              f"blank PNG encode {encode * 1000:.0f} ms; ratio {render / encode:.1f}x")


if __name__ == "__main__":
    main()
