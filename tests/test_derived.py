"""Derived assets end to end, through the CLI on projects in temp dirs: rebuilt only when their
source bytes or steps change, never a provider call, the same bytes in fresh directories,
mapped over matrix variants, one output of a count asset, --offline, output extensions,
slugged file names, and the manifest errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from assetbuild.api import Project
from assetbuild.store.cache import Cache, CacheRecord
from assetbuild.run.transforms import derive
from tests.conftest import ProjectDir, png

KIT = """
[defaults]
size = "96x64"
[assets.hero]
prompt = "the hero"
[assets.logo]
prompt = "the logo"
size = "32x32"
[assets.og]
from = "@hero"
steps = [
  { op = "fit", size = "60x30", mode = "cover" },
  { op = "overlay", image = "@logo", position = "southeast", margin = 2, scale = 0.2, opacity = 0.9 },
  { op = "format", format = "jpeg", quality = 85 },
]
[assets.favicon]
from = "@logo"
steps = [{ op = "format", format = "ico", sizes = [16, 32] }]
"""


def built(project: ProjectDir, *args: str) -> dict:
    res = project.run("build", "--json", *args)
    assert res.exit_code == 0, res.stderr + res.output
    return json.loads(res.output)


def failed(project: ProjectDir, *args: str) -> str:
    res = project.run(*args)
    assert res.exit_code == 2 and "Traceback" not in res.stderr, res.stderr + res.output
    return res.stderr


def actions(project: ProjectDir) -> dict[str, tuple[str, list[str]]]:
    plan = json.loads(project.run("plan", "--json").output)
    return {a["asset"]: (a["action"], a["codes"]) for a in plan["actions"]}


def sha(project: ProjectDir, rel: str) -> str:
    return hashlib.sha256(project.read(rel)).hexdigest()


# -- acceptance 1 -------------------------------------------------------------------------------

def test_a_derived_asset_costs_no_call_and_is_rebuilt_only_when_its_steps_or_source_bytes_change(project):
    project.manifest(KIT)
    summary = built(project)
    assert summary == {**summary, "generated": 2, "derived": 2, "cost": 0.0}
    assert project.calls.assets == {"hero", "logo"}  # og and favicon called no provider
    assert actions(project)["og"] == ("up-to-date", [])
    assert built(project)["up_to_date"] == 4 and project.calls.total == 0

    # its steps change: only it is derived again, free
    project.manifest(KIT.replace("quality = 85", "quality = 60"))
    assert actions(project)["og"] == ("derive", ["steps-changed"])
    assert "steps changed" in project.run("plan").output
    summary = built(project)
    assert summary["derived"] == 1 and summary["up_to_date"] == 3 and project.calls.total == 0

    # its source's bytes change: the source is generated (1 call), the derived one derived (0 calls)
    project.manifest(KIT.replace("quality = 85", "quality = 60").replace('"the hero"', '"the hero, again"'))
    summary = built(project)
    assert project.calls.assets == {"hero"} and project.calls.total == 1
    assert summary["generated"] == 1 and summary["derived"] == 1 and summary["up_to_date"] == 2
    lock = (project.root / "assetbuild.lock").read_text()
    assert 'provider = "derive"' in lock and 'kind = "derive"' in lock

    # the source restored from the cache with the same bytes: og is restored too, nothing derived
    project.manifest(KIT.replace("quality = 85", "quality = 60"))
    summary = built(project)
    assert summary["restored"] == 2 and summary["derived"] == 0 and project.calls.total == 0


def test_derived_bytes_are_identical_across_two_runs_in_fresh_directories(tmp_path):
    shas = []
    for run in ("one", "two"):
        project = ProjectDir(tmp_path / run / "proj", tmp_path / run / "cache")
        project.root.mkdir(parents=True)
        project.manifest(KIT + '[assets.thumb]\nfrom = "@og"\nsteps = [{ op = "grayscale" }, '
                               '{ op = "format", format = "webp", quality = 70 }]\n')
        built(project)
        shas.append({rel: sha(project, rel) for rel in ("assets/og.jpg", "assets/favicon.ico", "assets/thumb.webp")})
    assert shas[0] == shas[1]


def test_a_touched_source_derives_nothing_and_a_changed_overlay_file_derives_again(project):
    project.write("brand/mark.png", png(16, 16, (200, 10, 10)))
    project.manifest(KIT.replace('image = "@logo"', 'image = "brand/mark.png"'))
    built(project)
    mark = project.root / "brand" / "mark.png"
    st = mark.stat()
    os.utime(mark, ns=(st.st_atime_ns + 10**10, st.st_mtime_ns + 10**10))
    assert built(project)["up_to_date"] == 4
    project.write("brand/mark.png", png(16, 16, (10, 200, 10)))
    assert actions(project)["og"] == ("derive", ["reference-changed"])
    assert built(project)["derived"] == 1 and project.calls.total == 0
    project.write("brand/renamed.png", mark.read_bytes())  # the same bytes under another name: nothing to do
    project.manifest(KIT.replace('image = "@logo"', 'image = "brand/renamed.png"'))
    assert built(project)["up_to_date"] == 4


# -- the cache, the worker threads and the ordering rule ------------------------------------------

def test_a_deleted_derived_output_is_restored_from_the_cache_and_a_damaged_one_derived_again(project):
    project.manifest(KIT)
    built(project)
    before = project.read("assets/og.jpg")
    (project.root / "assets" / "og.jpg").unlink()
    assert actions(project)["og"] == ("restore", ["output-missing", "in-cache"])
    summary = built(project, "--offline")
    assert summary["restored"] == 1 and project.read("assets/og.jpg") == before
    blob = Path(project.env["ASSETBUILD_CACHE_DIR"]) / "blobs" / sha(project, "assets/og.jpg")[:2] / sha(
        project, "assets/og.jpg")
    blob.write_bytes(b"rotten")
    (project.root / "assets" / "og.jpg").unlink()
    summary = built(project, "--offline")
    assert summary["derived"] == 1 and project.read("assets/og.jpg") == before and project.calls.total == 0


class CrashingCache(Cache):
    """Dies the first time a result is put in the index (a kill in that window)."""

    def put_result(self, fingerprint: str, record: CacheRecord) -> None:
        if record.provider == "derive":
            raise KeyboardInterrupt  # stands for a SIGKILL: nothing after it runs
        super().put_result(fingerprint, record)


def test_a_derived_image_is_cached_before_its_output_and_lock_entry(project):
    project.manifest(KIT)
    cache = CrashingCache(Path(project.env["ASSETBUILD_CACHE_DIR"]))
    crashing = Project.load(project.root, env=project.env, cache=cache)
    events = []
    with pytest.raises(BaseException):
        crashing.build(["og"], jobs=1, on_event=events.append)
    crashing.close()
    assert not (project.root / "assets" / "og.jpg").exists()  # no output before the cache has it
    assert [e.status for e in events if e.kind == "start" and e.node == "og"] == ["derive"]  # ran in a worker
    summary = built(project)
    assert summary["derived"] == 2 and project.calls.total == 0


# -- matrix, #N, --offline -------------------------------------------------------------------

SNEAKERS = """
[defaults]
size = "48x48"
[assets.sneaker]
prompt = "sneaker in {color} on {floor}"
matrix = { color = ["red", "navy"], floor = ["white", "con crete"] }
[assets.thumb]
from = "@sneaker"
steps = [{ op = "resize", size = "16x16" }, { op = "format", format = "webp" }]
[assets.card]
from = "@sneaker[floor=white]"
matrix = { bg = ["white", "black"] }
steps = [{ op = "pad", margin = 2, background = "{bg}" }]
output = "cards/{color}-{bg}.png"
"""


def test_from_a_matrix_asset_maps_over_its_variants(project):
    project.manifest(SNEAKERS)
    summary = built(project)
    assert summary["generated"] == 4 and summary["derived"] == 4 + 4
    plan = actions(project)
    assert {nid for nid in plan if nid.startswith("thumb")} == {
        "thumb[color=red,floor=white]", "thumb[color=red,floor=con crete]",
        "thumb[color=navy,floor=white]", "thumb[color=navy,floor=con crete]"}
    assert {nid for nid in plan if nid.startswith("card")} == {
        "card[bg=white,color=red]", "card[bg=black,color=red]", "card[bg=white,color=navy]",
        "card[bg=black,color=navy]"}
    names = sorted(p.relative_to(project.root / "assets").as_posix() for p in (project.root / "assets").rglob("*.*"))
    assert "thumb-red-con-crete.webp" in names and "sneaker-navy-con-crete.png" in names  # slugged: no space
    assert "cards/navy-black.png" in names
    # each thumb is its own sneaker, resized
    red = project.read("assets/sneaker-red-white.png")
    expected = derive(red, [{"op": "resize", "size": "16x16"}, {"op": "format", "format": "webp", "quality": 80}])
    assert project.read("assets/thumb-red-white.webp") == expected.data
    # one sneaker changes: only its thumb and card follow
    project.manifest(SNEAKERS.replace('color = ["red", "navy"]', 'color = ["red", "navy", "lime"]'))
    summary = built(project)
    assert project.calls.total == 2 and summary["derived"] == 2 + 2


def test_from_one_output_of_a_count_asset_and_the_error_without_it(project):
    board = """
    [defaults]
    size = "40x30"
    [assets.board]
    prompt = "panels"
    count = 3
    [assets.panel]
    from = "@board#2"
    steps = [{ op = "grayscale" }]
    """
    project.manifest(board)
    built(project)
    second = derive(project.read("assets/board-2.png"), [{"op": "grayscale"}]).data
    assert project.read("assets/panel.png") == second
    project.manifest(board.replace("@board#2", "@board"))
    err = failed(project, "plan")
    assert "assets.panel.from: '@board' names 3 images (count = 3), and from takes one; name it, e.g. @board#1" in err
    project.manifest(board.replace('{ op = "grayscale" }', '{ op = "overlay", image = "@board" }'))
    assert "and an overlay takes one; name it, e.g. @board#1 (#1..#3)" in failed(project, "plan")


def test_offline_derives_and_restores_but_blocks_what_needs_a_host(project):
    project.write("brand/logo.png", png(64, 64))
    project.manifest("""
    [providers.ark]
    type = "modelark"
    [assets.remote]
    prompt = "needs a host"
    provider = "ark"
    [assets.from-file]
    from = "brand/logo.png"
    steps = [{ op = "fit", size = "16x16", mode = "contain" }]
    [assets.from-remote]
    from = "@remote"
    steps = [{ op = "grayscale" }]
    """)
    project.env["ARK_API_KEY"] = "k"  # without it, remote is blocked on its key (tests/test_keys.py)
    plan = actions(project)
    assert plan["from-file"] == ("derive", ["new-asset"]) and plan["remote"][0] == "generate"
    res = project.run("build", "--offline", "--json", "-k")
    assert res.exit_code == 1
    summary = json.loads(res.output)
    assert summary["derived"] == 1 and summary["blocked"] == 2 and summary["cost"] == 0.0
    assert project.calls.total == 0 and "from-remote: upstream remote not built" in res.stderr
    assert (project.root / "assets" / "from-file.png").is_file()


# -- matrix everywhere and file names ---------------------------------------------------------

def test_a_matrix_value_in_size_and_in_steps_with_slugged_file_names(project):
    project.manifest("""
    [assets.social]
    prompt = "social post, {ratio}"
    matrix = { ratio = ["1:1", "16:9"] }
    size = "{ratio}@1K"
    [assets.crop]
    from = "@social[ratio=16:9]"
    matrix = { shape = ["1:1", "4:5"] }
    steps = [{ op = "crop", size = "{shape}" }, { op = "resize", size = "100x" }]
    output = "crops/{shape}.png"
    """)
    built(project)
    files = sorted(p.relative_to(project.root).as_posix() for p in (project.root / "assets").rglob("*.png"))
    assert files == ["assets/crops/1-1.png", "assets/crops/4-5.png", "assets/social-1-1.png",
                     "assets/social-16-9.png"]
    assert not any(":" in f for f in files)
    sizes = {f: Image.open(project.root / f).size for f in files}
    assert sizes["assets/social-16-9.png"] == (1280, 720) and sizes["assets/social-1-1.png"] == (1024, 1024)
    assert sizes["assets/crops/4-5.png"] == (100, 125)


def test_matrix_values_that_slug_to_one_file_name_are_an_error_naming_them(project):
    project.manifest("""
    [assets.a]
    prompt = "a {ratio}"
    size = "32x32"
    matrix = { ratio = ["16:9", "16/9"] }
    """)
    err = failed(project, "plan")
    assert ("assets.a.matrix.ratio: matrix values '16:9' and '16/9' both become '16-9' in the output file name "
            "(characters other than A-Z a-z 0-9 . _ - become '-')") in err


def test_the_output_extension_follows_the_format_step(project):
    project.manifest(KIT + '[assets.mark]\nfrom = "@logo"\nsteps = [{ op = "format", format = "webp" }]\n'
                           'output = "marks/{asset}.webp"\n')
    built(project)
    for rel, fmt in (("assets/og.jpg", "JPEG"), ("assets/favicon.ico", "ICO"), ("assets/marks/mark.webp", "WEBP")):
        assert Image.open(project.root / rel).format == fmt
    project.manifest(KIT + '[assets.mark]\nfrom = "@logo"\nsteps = [{ op = "format", format = "webp" }]\n'
                           'output = "marks/{asset}.png"\n')
    assert "assets.mark.output: its format step writes webp; end the output path with .webp" in failed(project, "plan")
    project.manifest(KIT + '[assets.mark]\nfrom = "@logo"\nsteps = [{ op = "grayscale" }]\noutput = "m.jpg"\n')
    assert "without a format step it is written as PNG; end the output path with .png" in failed(project, "plan")


# -- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("table, line", [
    ('prompt = "x"\nfrom = "@logo"\nsteps = [{ op = "grayscale" }]',
     "assets.d.from: an asset is generated (prompt) or derived (from + steps), not both; remove one"),
    ('size = "32x32"',
     'assets.d: an asset needs a prompt (generated) or from + steps (derived); add prompt = "..."'),
    ('steps = [{ op = "grayscale" }]', 'assets.d.steps: steps need from = "@asset", the image they start from'),
    ('from = "@logo"', "assets.d.from: a derived asset needs steps"),
    ('from = "@logo"\nsteps = [{ op = "grayscale" }]\nseed = 3',
     "assets.d.seed: seed does not apply to a derived asset (from)"),
    ('from = "@lgo"\nsteps = [{ op = "grayscale" }]', "assets.d.from: unknown asset @lgo; did you mean @logo?"),
    ('from = "@logo"\nsteps = [{ op = "resise", size = "8x8" }]',
     "assets.d.steps: step 1: unknown op 'resise'; did you mean 'resize'?"),
    ('from = "@logo"\nsteps = [{ op = "overlay", image = "@logo", opacity = 2 }]',
     "assets.d.steps: step 1 (overlay): opacity 2 is out of range; use 0 (invisible) to 1 (opaque)"),
    ('from = "@logo"\nsteps = [{ op = "overlay", image = "nope.png" }]',
     "assets.d.steps: reference file nope.png does not exist"),
    ('from = "@logo"\nsteps = [{ op = "crop", size = "{ratio}" }]',
     "assets.d.steps: step 1 (crop): unknown placeholder {ratio}"),
    ('from = "@d"\nsteps = [{ op = "grayscale" }]', "assets.d.from: reference cycle: d -> d"),
    ('from = "@logo"\nsteps = [{ op = "overlay", image = "@d" }]', "assets.d.steps: reference cycle: d -> d"),
])
def test_bad_derived_assets_are_one_line_each_with_the_line_and_key(project, table, line):
    project.manifest(f'[assets.logo]\nprompt = "logo"\nsize = "32x32"\n[assets.d]\n{table}\n')
    err = failed(project, "build")
    assert re.match(r"error: assetbuild\.toml:[4-7]: " + re.escape(line), err), err
    assert len(err.strip().splitlines()) == 1 and not (project.root / "assets").exists()


def test_independent_step_problems_are_reported_together(project):
    project.manifest("""
    [assets.logo]
    prompt = "logo"
    size = "32x32"
    [assets.a]
    from = "@logo"
    steps = [{ op = "fit", size = "big" }, { op = "crop", box = [0, 0, 0, 1] }]
    [assets.b]
    from = "@logo"
    steps = [{ op = "format", format = "gif" }]
    """)
    err = failed(project, "plan").strip().splitlines()
    assert len(err) == 3 and "step 1 (fit)" in err[0] and "step 2 (crop)" in err[1] and "step 1 (format)" in err[2]


def test_a_crop_outside_its_source_fails_that_asset_with_a_clear_line(project):
    project.manifest(KIT + '[assets.bad]\nfrom = "@logo"\nsteps = [{ op = "crop", box = [0, 0, 64, 64] }]\n')
    res = project.run("build", "-k")
    assert res.exit_code == 1
    assert "failed     bad: crop box [0, 0, 64, 64] reaches outside the 32x32 image" in res.output
    assert (project.root / "assets" / "og.jpg").is_file()


def test_a_generated_asset_may_reference_a_derived_one_and_explain_shows_the_steps(project):
    project.manifest(KIT + '[assets.poster]\nprompt = "poster"\nreferences = ["@og"]\n')
    built(project)
    assert project.calls.assets == {"hero", "logo", "poster"}
    out = project.run("explain", "og").output
    assert out.startswith("og: up-to-date") and "  step 1       " in out and "  source       @hero" in out
    assert "  overlay      @logo" in out and "by derive (pillow-" in out


def test_a_noop_build_with_derived_assets_does_not_load_pillow(project):
    project.manifest(KIT)
    built(project)
    for path in project.root.rglob("*"):  # past the racy-mtime window, so the memos trust them
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns - 10**10, st.st_mtime_ns - 10**10))
    built(project)
    code = ("import sys, json; from assetbuild.api import Project; "
            f"r = Project.load({str(project.root)!r}).build(); "
            "print(json.dumps([r.to_json()['up_to_date'], 'PIL' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **project.env}).stdout
    assert json.loads(out) == [4, False]


def test_the_lock_of_a_derived_asset_reads_back_the_same(project):
    project.manifest(KIT)
    built(project)
    entry = Project.load(project.root, env=project.env).lock.entries["og"]
    assert entry.provider == "derive" and entry.cost_usd == 0.0 and entry.inputs["kind"] == "derive"
    assert [s["op"] for s in entry.inputs["steps"]] == ["fit", "overlay", "format"]
    assert (entry.outputs[0].width, entry.outputs[0].height) == (60, 30)
    assert Image.open(io.BytesIO(project.read("assets/og.jpg"))).size == (60, 30)


# -- the memory bound (issue 17 item 9) ---------------------------------------------------------

def test_steps_chained_past_the_size_limit_are_one_manifest_line_naming_asset_and_step(project):
    project.manifest("""
[defaults]
size = "32x32"
[assets.hero]
prompt = "the hero"
[assets.huge]
from = "@hero"
steps = [{ op = "resize", size = "16384x16384" }, { op = "pad", margin = 16384 }, { op = "pad", margin = 16384 }]
""")
    res = project.run("build")
    assert res.exit_code == 2, res.stderr + res.output
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line and "MemoryError" not in line, line
    assert "assets.huge" in line and "step 2 (pad)" in line and "16384" in line, line
    assert not (project.root / "assets").exists()  # refused before anything ran


def test_a_step_over_the_limit_on_the_source_image_fails_that_asset_in_one_line_before_it_runs(project):
    # From a generated asset, its asked size tells at load: pad a 32x32 image by the limit.
    project.manifest("""
[defaults]
size = "32x32"
[assets.hero]
prompt = "the hero"
[assets.wide]
from = "@hero"
steps = [{ op = "pad", margin = [0, 16384] }]
""")
    res = project.run("build")
    assert res.exit_code == 2, res.stderr + res.output
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "assets.wide.steps" in line, line
    assert "step 1 (pad) would make a 32800x32 image" in line and "from hero, 32x32" in line, line
    # From a file, only the image itself tells: that asset fails with the same line, nothing allocated.
    project.write("brand/small.png", png(32, 32))
    project.manifest("""
[assets.wide]
from = "brand/small.png"
steps = [{ op = "pad", margin = [0, 16384] }]
""")
    res = project.run("build")
    text = res.stderr + res.output
    assert res.exit_code == 1 and "Traceback" not in text and "MemoryError" not in text, text
    assert "wide" in text and "step 1 (pad) would make a 32800x32 image" in text, text


def test_each_steps_output_size_is_checked_before_it_runs():
    with pytest.raises(Exception, match=r"step 2 \(pad\) would make a 16394x10 image"):
        derive(png(10, 10), [{"op": "pad", "margin": [0, 0, 0, 0], "background": "#00000000"},
                             {"op": "pad", "margin": [0, 8192, 0, 8192], "background": "#00000000"}])
