"""The report's page size and how fast it opens in Chromium, for a 300-image kit and for
examples/brand-kit.

For each project: build it (local provider, an empty cache in a temp folder), time
`python -m assetbuild report` as a whole process (the first report makes every thumbnail;
a second one finds them in the cache folder's memo), then open the page in headless Chromium
(Debian's `chromium`, driven by playwright) --repeat times, a new page each time in one
warm browser, and measure

* load: from navigation start to the `load` event (what is on screen first; lazy
  thumbnails below the fold are not fetched yet), and
* all decoded: until every thumbnail on the page is decoded too (each image switched to
  eager loading and awaited with `img.decode()`): the whole page, as if scrolled through.

The 300-image kit is benchmarks/synth.py's project of 300 nodes (chains, 2x2 matrix
assets, reference files) at 512x512, so that thumbnails are made from images larger than
the thumbnail; brand-kit is the example as it is (29 images, derived assets included).

    python benchmarks/report_size.py [--assets 300] [--size 512x512] [--repeat 5] [--figures FILE]

Target (issue 8): the report of examples/brand-kit opens in Chromium in under 2 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import ROOT, Report, assetbuild, bench_env, machine, run_timed, table
from synth import write_project

COMMAND = "python benchmarks/report_size.py"
OPEN_MAX_S = 2.0
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ALL_DECODED = """async () => {
  const images = Array.from(document.images);
  for (const img of images) img.loading = "eager";
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return [images.length, images.filter(img => img.naturalWidth > 0).length];
}"""


def build_and_report(root: Path, cache: Path) -> tuple[Path, list[str]]:
    """Build, then write the report twice: first with no thumbnail memo, then with it.
    Returns the page and "wall s (CPU s)" of each report."""
    env = bench_env({"ASSETBUILD_CACHE_DIR": str(cache)})
    run_timed(assetbuild("build", "-j", "2"), root, env)
    times = []
    for _ in range(2):
        done = run_timed(assetbuild("report"), root, env)
        times.append(f"{done.wall_s:.2f} ({done.cpu_s:.2f})")
    return root / "assetbuild-report.html", times


def open_times(browser: object, page_file: Path, repeat: int) -> tuple[list[float], list[float], tuple[int, int]]:
    loads, decoded, counts = [], [], (0, 0)
    for _ in range(repeat):
        page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        start = time.perf_counter()
        page.goto(page_file.as_uri(), wait_until="load")
        loads.append(time.perf_counter() - start)
        counts = tuple(page.evaluate(ALL_DECODED))
        decoded.append(time.perf_counter() - start)
        page.close()
    return loads, decoded, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=300, help="images of the synthetic kit (default 300)")
    parser.add_argument("--size", default="512x512", help="their size (default 512x512)")
    parser.add_argument("--repeat", type=int, default=5, help="page opens per project (default 5)")
    parser.add_argument("--figures", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    print(f"report size and open time; {machine()}", flush=True)
    report = Report("report_size")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ab-report-") as tmp, sync_playwright() as p:
        synth = Path(tmp) / f"synth-{args.assets}"
        write_project(synth, args.assets, args.size)
        kit = Path(tmp) / "brand-kit"
        shutil.copytree(ROOT / "examples" / "brand-kit", kit,
                        ignore=shutil.ignore_patterns("assets", "assetbuild.lock", ".assetbuild", "*.html"))
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for name, root in ((f"{args.assets} images ({args.size})", synth), ("examples/brand-kit", kit)):
                page_file, writes = build_and_report(root, Path(tmp) / f"cache-{root.name}")
                size = page_file.stat().st_size
                loads, decoded, (images, ok) = open_times(browser, page_file, args.repeat)
                load_ms, all_ms = statistics.median(loads) * 1000, statistics.median(decoded) * 1000
                rows.append([name, f"{size:,}", f"{size / 1e6:.2f}", images, ok, *writes,
                             f"{min(loads) * 1000:.0f} / {load_ms:.0f}", f"{min(decoded) * 1000:.0f} / {all_ms:.0f}"])
                key = "brand-kit" if root is kit else f"{args.assets} images"
                report.add(f"report page size, {key}", size / 1e6, "MB", COMMAND)
                report.add(f"report open until every thumbnail decoded, {key} (median)", all_ms / 1000, "s",
                           COMMAND, at_most=OPEN_MAX_S if root is kit else None)
                if ok != images:
                    raise SystemExit(f"{name}: {images - ok} of {images} thumbnails did not decode")
        finally:
            browser.close()
    print(table(["project", "page bytes", "MB", "images", "decoded", "report s (CPU s)", "again s (CPU s)",
                 "load ms (min / median)",
                 "all decoded ms (min / median)"], rows))
    report.print_verdicts()
    report.dump(args.figures)


if __name__ == "__main__":
    main()
