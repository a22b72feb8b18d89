"""DESIGN §2: every input that must change the fingerprint does, and nothing else does."""

from __future__ import annotations

import os

import pytest

from assetbuild.api import Project
from assetbuild.store.hashing import FileHasher
from assetbuild.plan.planner import Unsettled
from tests.conftest import png

BASE = {
    "prompt": '"a fox"',
    "size": '"2K"',
}
PROVIDERS = """
[providers.ark]
type = "modelark"
base_url = "https://ark.example/api/v3"
concurrency = 4
[providers.ark2]
type = "modelark"
base_url = "https://other.example/api/v3"
api_key_env = "OTHER_KEY"
concurrency = 1
requests_per_minute = 5
price_per_image = 0.5
fallback = "fal"
[providers.fal]
type = "fal"
"""


def fp(tmp_path, asset: dict[str, str], *, extra: str = "", files: dict[str, bytes] | None = None,
       head: str = "") -> str:
    root = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
    root.mkdir()
    for rel, data in {"ref.png": png(), **(files or {})}.items():
        (root / rel).write_bytes(data)
    body = "\n".join(f"{k} = {v}" for k, v in asset.items())
    (root / "assetbuild.toml").write_text(
        f'[project]\nprovider = "ark"\n{head}\n{PROVIDERS}\n[assets.a]\n{body}\n{extra}', encoding="utf-8")
    project = Project.load(root, env={"ASSETBUILD_CACHE_DIR": str(root / ".cache")})
    decision = next(d for d in project.plan().decisions if d.id == "a")
    assert decision.fingerprint is not None
    return decision.fingerprint


@pytest.mark.parametrize("key,value", [
    ("prompt", '"a fox at night"'),
    ("model", '"seedream-4.5"'),
    ("size", '"4K"'),
    ("count", "2"),
    ("seed", "42"),
    ("watermark", "true"),
    ("params", '{ optimize_prompt_options = { mode = "fast" } }'),
    ("references", '["ref.png"]'),
    ("provider", '"local"'),  # the local provider is its own model
])
def test_each_input_changes_the_fingerprint(tmp_path, key, value):
    assert fp(tmp_path, BASE) != fp(tmp_path, {**BASE, key: value})


def test_reference_bytes_change_it_but_name_and_mtime_do_not(tmp_path):
    with_ref = {**BASE, "references": '["ref.png"]'}
    base = fp(tmp_path, with_ref)
    assert fp(tmp_path, with_ref, files={"ref.png": png(color=(1, 1, 1))}) != base
    assert fp(tmp_path, {**BASE, "references": '["renamed.png"]'}, files={"renamed.png": png()}) == base


def test_upstream_output_bytes_change_it(tmp_path):
    root = tmp_path / "up"
    root.mkdir()
    (root / "assetbuild.toml").write_text(
        '[defaults]\nsize = "32x32"\n[assets.up]\nprompt = "u"\n[assets.down]\nprompt = "d"\nreferences = ["@up"]\n')
    project = Project.load(root, env={"ASSETBUILD_CACHE_DIR": str(tmp_path / "c")})
    planner = project.planner()
    down = project.nodes["down"]
    one = planner.decide(down, {"up": ["a" * 64]})
    two = planner.decide(down, {"up": ["b" * 64]})
    assert one.fingerprint != two.fingerprint
    assert planner.decide(down, {"up": ["a" * 64]}).fingerprint == one.fingerprint
    assert [str(r) for r in planner.decide(down, {"up": Unsettled.PENDING}).reasons] == ["upstream up changed"]
    assert planner.decide(down, {"up": Unsettled.UNBUILT}).action.value == "blocked"


@pytest.mark.parametrize("key,value", [
    ("size", '"2048x2048"'),  # same resolved pixels as 2K
    ("size", '"1:1"'),
    ("provider", '"ark2"'),  # another host of the same model, other URL, key, limits, price, fallback
    ("provider", '"fal"'),
    ("watermark", "false"),  # the default, written out
    ("count", "1"),
])
def test_these_do_not_change_the_fingerprint(tmp_path, key, value):
    assert fp(tmp_path, BASE) == fp(tmp_path, {**BASE, key: value})


def test_formatting_comments_order_and_other_assets_do_not_change_it(tmp_path):
    base = fp(tmp_path, BASE)
    assert fp(tmp_path, {"size": '"2K"  # comment', "prompt": "'a fox'"}) == base
    assert fp(tmp_path, BASE, extra='\n[assets.zzz]\nprompt = "other"\n') == base
    assert fp(tmp_path, BASE, head='name = "renamed project"\nmax_cost = 3.0') == base


def test_file_hasher_uses_mtime_and_size_only_to_skip_rehashing(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    old = path.stat().st_mtime_ns - 10 * 10**9
    os.utime(path, ns=(old, old))
    memo = tmp_path / "memo.json"
    hasher = FileHasher(tmp_path, memo)
    first = hasher.hash("f.bin")
    hasher.save()
    again = FileHasher(tmp_path, memo)
    assert again.hash("f.bin") == first and again.hashed == 0  # memo hit: not re-read
    path.write_bytes(b"two")  # new bytes, same size: the new mtime forces a re-hash
    os.utime(path, ns=(old + 5 * 10**9, old + 5 * 10**9))
    third = FileHasher(tmp_path, memo)
    assert third.hash("f.bin") != first and third.hashed == 1
    assert third.hash("missing.bin") is None


def test_a_build_hashes_each_fresh_file_once(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "ref.png").write_bytes(png())
    (root / "assetbuild.toml").write_text(
        '[defaults]\nsize = "32x32"\n[assets.a]\nprompt = "a"\nreferences = ["ref.png"]\n'
        '[assets.b]\nprompt = "b"\nreferences = ["@a"]\n')
    project = Project.load(root, env={"ASSETBUILD_CACHE_DIR": str(tmp_path / "c")})
    project.build()  # plans, then the executor decides each node again
    assert project.hasher.hashed == 1  # ref.png; outputs it wrote are remembered, not re-read
    again = Project.load(root, env={"ASSETBUILD_CACHE_DIR": str(tmp_path / "c")})
    assert again.build().to_json()["up_to_date"] == 2
    assert again.hasher.hashed == 3  # a new process re-reads files too fresh to trust from a memo
