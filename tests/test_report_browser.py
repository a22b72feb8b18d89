"""The report as a person sees it: examples/brand-kit built, committed, changed, then its
report opened in headless Chromium (Debian's `chromium`, driven by playwright; no browser
download). Every thumbnail decodes, the pick is marked, a stale asset is flagged with its
reason, a changed asset shows old beside new. A screenshot is kept in test-artifacts/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assetbuild.store.cache import Cache
from tests.conftest import REPO, ProjectDir, png

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Brings each image into view, as scrolling does, and waits for it to decode (at most 5 s
# each: an image that never loads is left with naturalWidth 0, which the test reports).
SCROLL_THROUGH = """async () => {
  for (const img of Array.from(document.images)) {
    img.scrollIntoView({block: "center"});
    await Promise.race([img.decode().catch(() => null), new Promise(r => setTimeout(r, 5000))]);
  }
}"""


def chromium() -> str:
    """Debian's chromium, or a skip that says why there is none."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        reason = ("chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it "
                  "where it can)")
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


def launch(playwright: object) -> object:
    return playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)  # type: ignore[attr-defined]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
                    *args], cwd=root, capture_output=True, text=True, check=True, timeout=60)


def with_candidates(kit: ProjectDir, cache_dir: Path) -> tuple[str, int]:
    """An asset with candidates and a pick: the kit's own if its lock has one, else three
    written into the poster's lock table (the keys `candidates` / `pick` record)."""
    lock = kit.root / "assetbuild.lock"
    data = tomllib.loads(lock.read_text(encoding="utf-8"))
    for aid, table in data["assets"].items():
        if table.get("candidate_images") and isinstance(table.get("pick"), int):
            return aid, table["pick"]
    import tomli_w

    cache = Cache(cache_dir)
    shas = [cache.put_blob(png(96, 128, (40 + i * 70, 90, 160 - i * 40))) for i in range(3)]
    cache.close()
    data["assets"]["poster"].update(candidates=3, candidate_images=shas, pick=2)
    lock.write_text(tomli_w.dumps(data), encoding="utf-8")
    return "poster", 2


def test_the_brand_kit_report_in_chromium(brand_kit: ProjectDir, tmp_path: Path):
    pw = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    chromium()
    kit = brand_kit
    assert kit.run("build").exit_code == 0
    git(kit.root, "init", "-q", "-b", "main")
    git(kit.root, "add", "-A")
    git(kit.root, "commit", "-q", "-m", "kit")
    manifest = kit.root / "assetbuild.toml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("at golden hour", "at dawn"), encoding="utf-8")
    assert kit.run("build").exit_code == 0  # hero and what reads it change: old beside new
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("under a full moon", "under a crescent moon"), encoding="utf-8")  # not built
    picked_asset, pick = with_candidates(kit, tmp_path / "cache")
    res = kit.run("report", "--since", "HEAD")
    assert res.exit_code == 0, res.stderr
    page_file = kit.root / "assetbuild-report.html"
    print(f"report: {page_file.stat().st_size} bytes")

    with pw.sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            started = time.perf_counter()
            page.goto(page_file.as_uri(), wait_until="load")
            page.evaluate(SCROLL_THROUGH)  # as a reader scrolls: each lazy image loads and decodes
            opened_ms = (time.perf_counter() - started) * 1000
            print(f"report opened with every thumbnail decoded in {opened_ms:.0f} ms")
            images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.naturalWidth])")
            assert len(images) >= 29 + 3  # every output, plus the candidates, the old sides, the references
            assert [alt for alt, width in images if width == 0] == []

            # The pick is marked: one candidate figure of that asset, outlined and labelled.
            asset = page.locator(f'section.asset[data-asset="{picked_asset}"]')
            picked = asset.locator("figure.candidate.picked")
            assert picked.count() == 1
            assert "picked" in picked.inner_text() and f"candidate {pick}" in picked.inner_text()
            assert picked.locator("img").evaluate("i => getComputedStyle(i).outlineStyle") != "none"

            # A stale asset is flagged with its reason.
            night = page.locator('section.asset[data-asset="hero-night"]')
            assert "stale" in (night.get_attribute("class") or "")
            assert night.locator(".badge.stale").is_visible()
            assert "prompt changed" in night.locator(".status").inner_text()
            assert page.locator("#stale-count").inner_text() != "0"

            # A changed asset: the old image beside the new one.
            card = page.locator('article.change.changed[data-asset="hero"]')
            assert "prompt changed" in card.inner_text()
            card.scroll_into_view_if_needed()
            old = card.locator(".side.old img").first.bounding_box()
            new = card.locator(".side.new img").first.bounding_box()
            assert old and new and old["x"] + old["width"] <= new["x"]  # side by side, old on the left
            assert abs(old["y"] - new["y"]) < 5

            page.evaluate("window.scrollTo(0, 0)")
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "report-brand-kit.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
