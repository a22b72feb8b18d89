"""commands/summaries.py on a real project (local provider, one host without its key): the
``build --json`` lists, ``check --json`` and the ``plan --format markdown`` job summary, as
the CLI prints them."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetbuild.api import Project
from assetbuild.commands.summaries import build_json, check_json, plan_markdown

MANIFEST = """[project]
provider = "local"
output_dir = "out"

[defaults]
size = "64x64"

[providers.ark]
type = "modelark"
price_per_image = 0.25

[assets.logo]
prompt = "a logo"

[assets.card]
from = "@logo"
steps = [{ op = "grayscale" }]

[assets.hero]
provider = "ark"
prompt = "a {tone} hero"
size = "2K"
matrix = { tone = ["warm|cold"] }
"""


def load(root: Path) -> Project:
    return Project.load(root, env={"ASSETBUILD_CACHE_DIR": str(root / "cache")})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "assetbuild.toml").write_text(MANIFEST)
    return tmp_path


def test_build_json_lists_each_asset_under_its_outcome_with_files_cost_and_codes(root):
    with load(root) as project:
        data = build_json(project.build(), project.nodes)
    assert {k: data[k] for k in ("generated", "derived", "blocked", "failed", "cost")} == {
        "generated": 1, "derived": 1, "blocked": 1, "failed": 0, "cost": 0.0}
    assets = data["assets"]
    assert assets["generated"] == [{"asset": "logo", "files": ["out/logo.png"], "cost": 0.0, "provider": "local"}]
    assert assets["derived"] == [{"asset": "card", "files": ["out/card.png"]}]
    assert assets["blocked"] == [{"asset": "hero[tone=warm|cold]", "codes": ["new-asset", "missing-key"], "reasons": [
        "new asset", "API key not set: set the environment variable ARK_API_KEY"]}]
    assert assets["restored"] == assets["failed"] == assets["pruned"] == []
    assert data["missing_keys"] == [{"variable": "ARK_API_KEY", "providers": ["ark"],
                                     "assets": ["hero[tone=warm|cold]"]}]


def test_a_second_build_has_nothing_new_and_a_removed_asset_is_listed_as_pruned(root):
    keyless = MANIFEST.split("[assets.hero]")[0]
    (root / "assetbuild.toml").write_text(keyless)
    with load(root) as project:
        project.build()
    (root / "assetbuild.toml").write_text(keyless.replace('[assets.card]\nfrom = "@logo"\n'
                                                          'steps = [{ op = "grayscale" }]\n', ""))
    with load(root) as project:
        data = build_json(project.build(), project.nodes)
    assert (data["up_to_date"], data["generated"], data["derived"]) == (1, 0, 0)
    assert data["assets"]["pruned"] == [{"asset": "card", "files": ["out/card.png"], "kept": []}]
    assert data["missing_keys"] == []


def test_check_json_says_each_assets_status_and_sums_up(root):
    with load(root) as project:
        project.build(["logo"])
    with load(root) as project:
        data = check_json(project.check_all())
    by_asset = {item["asset"]: item for item in data["assets"]}
    assert by_asset["logo"] == {"asset": "logo", "status": "up-to-date", "action": "up-to-date", "reasons": [],
                                "codes": []}
    assert by_asset["card"] == {"asset": "card", "status": "stale", "action": "derive", "reasons": ["new asset"],
                                "codes": ["new-asset"]}
    # check assumes keys: a missing key is not what makes an asset stale
    assert by_asset["hero[tone=warm|cold]"]["action"] == "generate"
    assert data["summary"] == {"checked": 3, "up_to_date": 1, "stale": 2, "ok": False}


def test_plan_markdown_is_a_table_of_what_is_not_up_to_date_with_a_warning_per_missing_key(root):
    with load(root) as project:
        text = plan_markdown(project.plan())
    assert text == (
        "### assetbuild plan\n\n"
        "> **Warning:** `ARK_API_KEY` is not set: 1 asset(s) of ark are blocked.\n\n"
        "| asset | action | reasons | cost |\n|---|---|---|---:|\n"
        "| `logo` | generate | new asset |   |\n"
        "| `card` | derive | upstream logo changed |   |\n"
        "| `hero[tone=warm\\|cold]` | blocked | new asset; "
        "API key not set: set the environment variable ARK_API_KEY |   |\n\n"
        "**Estimated cost: $0.00** (1 generate, 1 derive, 1 blocked)\n")


def test_plan_markdown_with_assumed_keys_counts_the_cost_and_escapes_table_cells(root):
    with load(root) as project:
        text = plan_markdown(project.plan(["hero"], assume_keys=True), title="Assets")
    assert text.startswith("### Assets\n\n_Planned as if every API key were set (`--assume-keys`)._\n\n")
    assert "| `hero[tone=warm\\|cold]` | generate | new asset | $0.25 |" in text  # | escaped
    assert text.endswith("**Estimated cost: $0.25** (1 generate)\n")


def test_plan_markdown_of_nothing_to_do(root):
    (root / "assetbuild.toml").write_text(MANIFEST.split("[assets.hero]")[0])
    with load(root) as project:
        project.build()
    with load(root) as project:
        text = plan_markdown(project.plan())
    assert text == "### assetbuild plan\n\n**Estimated cost: $0.00** (2 up-to-date)\n"
