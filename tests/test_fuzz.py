"""Issue 6, fuzz: manifests and locks built from the real key set with hostile values (huge
integers, nan, unicode, path tricks, deep tables, wrong types) and raw bytes. Whatever the
input, loading and planning either succeed or raise an assetbuild error, never another
exception."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assetbuild.api import Project
from assetbuild.errors import AssetbuildError
from assetbuild.store.lockfile import INPUT_KEYS
from assetbuild.spec.models import AssetSpec, CacheConfig, LimitsConfig, ProjectConfig, ProviderConfig
from tests.conftest import png

# Bounded so the file runs in seconds; no example database written into the repository.
FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

PATH_TRICKS = ["ref.png", "bad.png", "../x.png", "../../etc/passwd", "/etc/passwd", "a\x00b.png", "n" * 300 + ".png",
               "assets/../..", ".", "", "a/../ref.png", "sub/{v}.png", "{asset}-{i}.png", "{v}.png", "{{", "}",
               "{0}", "{v.__class__}", "{v[0]}", "C:\\x.png", "ref.png/", "x\u2028y.png", "\\..\\x.png", "café.png"]
SIZE_TRICKS = ["2K", "1K", "4K", "32x32", "9" * 5000 + "x1", "0x0", "16:9@4K", "16:9", "1:0", "8192x8192",
               "16x16", "١٢x١٢", "-1x5", "1x99999999", "3:1@2K", "1:16", "17:1"]
REF_TRICKS = ["@a", "@b", "@b[v=x]", "@b[v=../x]", "@a#0", "@a#1", "@a#99999999999999999999", "@zz", "@a[", "@b[w=1]",
              "ref.png", "bad.png", "ref.png\n"]
TEXT = st.text(max_size=12)
STEP_TRICKS = [{"op": "fit", "size": "16x16"}, {"op": "resize", "size": "{v}x"}, {"op": "crop", "size": "1:1"},
               {"op": "crop", "box": [0, 0, 99999, 1]}, {"op": "crop", "box": [0, 0, 8, 8]}, {"op": "grayscale"},
               {"op": "pad", "margin": [1, 2]}, {"op": "overlay", "image": "@a"}, {"op": "overlay", "image": "@b#2"},
               {"op": "overlay", "image": "ref.png", "opacity": 1.5}, {"op": "format", "format": "ico"},
               {"op": "format", "format": "webp", "quality": 0}, {"op": "format", "format": "jpeg"},
               {"op": "fit", "size": "16x16", "mode": "pad", "background": "#zzz"}, {"op": "nope"}, {}, "fit"]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    TEXT,
    st.sampled_from(PATH_TRICKS + SIZE_TRICKS + REF_TRICKS),
)
hostile = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)


def rare(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (st.integers would favour its bounds)."""
    return st.sampled_from([False] * (n - 1) + [True])


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


SANE_ASSET = {
    "prompt": st.sampled_from(["p"] * 4 + ["p {v}", "{v} {nope}", "{{literal}}", "é" * 50]),
    "references": st.lists(st.sampled_from(["ref.png", "@a", "@b"] * 3 + REF_TRICKS), max_size=3),
    "matrix": st.sampled_from([{}, {"v": ["x", "y"]}, {"v": ["../x"]}, {"v": ["a,b"]}, {"v": []}, {"x.y": ["1"]},
                               {"v": [1, 1.5, True]}, {"v": ["x", "x"]}]),
    "count": st.integers(min_value=0, max_value=16),
    "candidates": st.integers(min_value=0, max_value=16),
    "size": st.sampled_from(["32x32"] * 8 + SIZE_TRICKS),
    "seed": st.integers(min_value=-2, max_value=2**32),
    "watermark": st.booleans(),
    "params": st.one_of(st.dictionaries(TEXT, scalars, max_size=3), st.integers(0, 40).map(deep)),
    "output": st.sampled_from(["{asset}.png"] * 4 + PATH_TRICKS),
    "provider": st.sampled_from(["local"] * 4 + ["fal", "p", "nope"]),
    "model": st.sampled_from(["seedream-4.0", "seedream-4.5", "seedream-5", "seedream-5.0-lite", "seedream-5.0-pro"]),
    "batch": st.sampled_from(["sequential", "separate", "x", ""]),
    "output_format": st.sampled_from(["png", "jpeg", "webp", ""]),
    "from": st.sampled_from(["@a", "@b", "@a#1", "@b[v={v}]", "ref.png", "{v}"] + REF_TRICKS),
    "steps": st.lists(st.sampled_from(STEP_TRICKS), max_size=4),
}
SANE = {
    "project": {"name": TEXT, "output_dir": st.sampled_from(PATH_TRICKS + ["assets", "out/deep"]),
                "provider": st.sampled_from(["local", "fal", "p", "nope"]),
                "model": st.sampled_from(["seedream-4.0", "seedream-4.5"]),
                "max_cost": st.floats(allow_nan=True, allow_infinity=True)},
    # never a reachable remote: tests do not touch the internet
    "cache": {"remote": st.sampled_from(["file:///nonexistent/x", "file://", "s3://", "s3://b/../x", "http://x", "",
                                         "not a url", "file:///\x00"]),
              "endpoint_url": st.sampled_from(["http://127.0.0.1:9", "x", "", "ftp://h"]), "timeout_s": st.floats(),
              "leases": st.sampled_from([True, False, "no", 1]), "lease_ttl_s": st.floats()},
    "limits": {"max_variants": st.integers(-1, 20), "max_reference_pixels": st.integers(-1, 10**7)},
    "provider": {"type": st.sampled_from(["local", "fal", "modelark", "evolink", "atlascloud", "apiframe",
                                          "replicate", "volcengine", "x"]),
                 "timeout_s": st.floats(), "poll_timeout_s": st.floats(), "poll_interval_s": st.floats(),
                 "concurrency": st.integers(-1, 100), "requests_per_minute": st.integers(-1, 10**30),
                 "max_attempts": st.integers(0, 30), "fallback": st.sampled_from(["p", "q", "local", "fal"]),
                 "price_per_image": st.one_of(st.floats(), st.dictionaries(st.sampled_from(["seedream-4.0", "x"]),
                                                                           st.floats(), max_size=2)),
                 "base_url": st.sampled_from(["http://127.0.0.1:9", "not a url", "", "ftp://x", "http://\x00"]),
                 "api_key_env": st.sampled_from(["K", "", "A\x00B", "é"]),
                 "model_ids": st.dictionaries(TEXT, TEXT, max_size=2),
                 "version": st.dictionaries(st.sampled_from(["seedream-4.5", "x"]), TEXT, max_size=2),
                 "download_deadline_s": st.floats(), "max_download_mb": st.integers(-1, 10**6)},
}
for model, name in ((AssetSpec, None), (ProjectConfig, "project"), (LimitsConfig, "limits"), (ProviderConfig, "provider"),
                    (CacheConfig, "cache")):
    keys = {field.alias or key for key, field in model.model_fields.items()}
    table = SANE_ASSET if name is None else SANE[name]
    assert set(table) == keys  # the fuzz follows the real key set: a new key must be fuzzed too


@st.composite
def table(draw: st.DrawFn, sane: dict[str, st.SearchStrategy[Any]], required: str = "") -> dict[str, Any]:
    """Some of the real keys, each with a plausible value or (one time in eight) a hostile
    one, and now and then a key that does not exist: mostly-plausible tables get past
    validation, so expansion, the graph and the planner see hostile values too."""
    out = {}
    keys = draw(st.lists(st.sampled_from(sorted(sane)), unique=True, max_size=len(sane)))
    if required and required not in keys and not draw(rare(10)):
        keys.append(required)
    for key in keys:
        out[key] = draw(hostile) if draw(rare(8)) else draw(sane[key])
    if draw(rare(30)):
        out[draw(TEXT)] = draw(hostile)
    return out


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name in ("project", "limits", "cache"):
        if draw(st.booleans()):
            doc[name] = draw(hostile) if draw(rare(10)) else draw(table(SANE[name]))
    if draw(st.booleans()):
        doc["defaults"] = draw(table(SANE_ASSET))
    if draw(st.booleans()):
        doc["providers"] = {n: draw(table(SANE["provider"], "type")) for n in draw(st.sets(st.sampled_from(["p", "q"])))}
    assets = {}
    ids = st.sampled_from(["a", "b", "c"] * 4 + ["Bad id", ""])
    for aid in draw(st.lists(ids, unique=True, min_size=1, max_size=3)):
        kind = draw(st.sampled_from(["prompt", "prompt", "from"]))  # generated or derived
        assets[aid] = draw(hostile) if draw(rare(10)) else draw(table(SANE_ASSET, kind))
    doc["assets"] = assets
    if draw(rare(20)):
        doc[draw(TEXT)] = draw(hostile)
    return doc


def _dump(doc: dict[str, Any]) -> bytes | None:
    try:
        return tomli_w.dumps(doc).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return None  # not representable in TOML (e.g. a None): covered by the raw-bytes property


@pytest.fixture(scope="module")
def workspace() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="assetbuild-fuzz-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _project(workspace: Path, manifest: bytes, lock: bytes | None = None) -> Path:
    root = workspace / "proj"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / "ref.png").write_bytes(png())
    (root / "bad.png").write_bytes(b"")
    (root / "assetbuild.toml").write_bytes(manifest)
    if lock is not None:
        (root / "assetbuild.lock").write_bytes(lock)
    return root


def loads_or_refuses(workspace: Path, root: Path) -> None:
    """The property: Project.load + plan succeed, or raise an AssetbuildError."""
    try:
        project = Project.load(root, env={"ASSETBUILD_CACHE_DIR": str(workspace / "cache")})
        try:
            project.plan()
        finally:
            project.close()
    except AssetbuildError as exc:
        text = str(exc)
        assert text and "Traceback" not in text
        assert all(line.isprintable() for line in text.splitlines()), text
        assert "object at 0x" not in text, text


@FUZZ
@given(doc=manifests())
def test_any_manifest_loads_or_fails_with_an_assetbuild_error(workspace, doc):
    data = _dump(doc)
    if data is not None:
        loads_or_refuses(workspace, _project(workspace, data))


@FUZZ
@given(doc=manifests(), cut=st.integers(0, 400), junk=st.binary(max_size=12))
def test_any_mangled_manifest_text_loads_or_fails_with_an_assetbuild_error(workspace, doc, cut, junk):
    data = _dump(doc) or b""
    loads_or_refuses(workspace, _project(workspace, data[:cut] + junk + data[cut:]))


LOCK_SANE = {
    "fingerprint": st.sampled_from(["f" * 64, ""]), "provider": st.sampled_from(["local", ""]),
    "model_id": TEXT, "built": TEXT, "cost_usd": st.floats(), "request_id": TEXT,
    "recipe": st.integers(0, 2), "prompt": TEXT, "model": st.sampled_from(["local", "seedream-4.0"]),
    "size": st.sampled_from(SIZE_TRICKS), "count": st.integers(-1, 3), "seed": st.integers(),
    "candidates": st.integers(-1, 4), "candidate_images": st.lists(st.sampled_from(["0" * 64, "1" * 64, "x"]), max_size=3),
    "pick": st.integers(-1, 4), "adopted": st.sampled_from(["0" * 64, "", "x"]),
    "watermark": st.booleans(), "params": st.dictionaries(TEXT, scalars, max_size=2),
    "kind": st.sampled_from(["generate", "derive", ""]), "steps": st.lists(st.one_of(st.sampled_from(STEP_TRICKS),
                                                                                     hostile), max_size=2),
    "references": st.lists(st.one_of(st.fixed_dictionaries({"ref": st.sampled_from(REF_TRICKS),
                                                            "sha256": st.sampled_from(["0" * 64, ""])}), hostile),
                           max_size=2),
    "outputs": st.lists(st.one_of(st.fixed_dictionaries({
        "path": st.sampled_from(["assets/a.png", "assets/b.png", "../../etc/passwd", "/etc/passwd", "ref.png",
                                 "a\x00.png", "assets", ""]),
        "sha256": st.sampled_from(["0" * 64, ""]), "width": st.one_of(st.integers(-5, 2**40), hostile),
        "height": st.integers(-5, 2**40)}), hostile), max_size=2),
    "batch": st.sampled_from(["separate", "sequential", ""]), "output_format": st.sampled_from(["png", "jpeg", ""]),
}
assert set(INPUT_KEYS) <= set(LOCK_SANE)
LOCK_MANIFEST = b'[defaults]\nsize = "32x32"\n[assets.a]\nprompt = "a"\nreferences = ["ref.png"]\n[assets.b]\nprompt = "b"\n'


@st.composite
def locks(draw: st.DrawFn) -> dict[str, Any]:
    assets = draw(st.one_of(
        st.dictionaries(st.sampled_from(["a", "b", "gone", "é"]), st.one_of(table(LOCK_SANE), table(LOCK_SANE), hostile),
                        max_size=3),
        hostile))
    return {"version": draw(st.one_of(st.just(1), st.just(1), hostile)), "assets": assets}


@FUZZ
@given(doc=locks())
def test_any_lock_loads_or_fails_with_an_assetbuild_error(workspace, doc):
    data = _dump(doc)
    if data is not None:
        loads_or_refuses(workspace, _project(workspace, LOCK_MANIFEST, data))


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_lock_bytes_load_or_fail_with_an_assetbuild_error(workspace, data):
    loads_or_refuses(workspace, _project(workspace, LOCK_MANIFEST, data))


def test_the_fuzz_reaches_the_planner():
    """A guard on the strategies: a sane draw does get past loading, so the property above
    exercises expansion, the graph and the planner, not only the TOML reader."""
    doc = {"assets": {"a": {"prompt": "p {v}", "matrix": {"v": ["x", "y"]}, "size": "32x32",
                            "references": ["ref.png"]}}}
    folder = Path(tempfile.mkdtemp(prefix="assetbuild-fuzz-"))
    try:
        root = _project(folder, _dump(doc) or b"")
        project = Project.load(root, env={"ASSETBUILD_CACHE_DIR": str(folder / "cache")})
        assert len(project.plan().decisions) == 2
        assert not math.isnan(project.plan().estimated_cost)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    doc["assets"]["b"] = {"from": "@a", "steps": STEP_TRICKS[:1]}  # a derived asset maps over a's variants
    folder = Path(tempfile.mkdtemp(prefix="assetbuild-fuzz-"))
    try:
        root = _project(folder, _dump(doc) or b"")
        project = Project.load(root, env={"ASSETBUILD_CACHE_DIR": str(folder / "cache")})
        assert [d.action.value for d in project.plan().decisions].count("derive") == 2
    finally:
        shutil.rmtree(folder, ignore_errors=True)
