"""The models x hosts table (spec/catalog.py): README shows it as the code has it, sizes and
prices read it, `assetbuild models` prints it, and `explain` names the price rule an asset gets."""

from __future__ import annotations

import json
import re

import pytest

from assetbuild.providers import create_provider
from assetbuild.spec import catalog
from assetbuild.spec.models import ProviderConfig
from assetbuild.spec.sizes import LIMITS, resolve_size, tiers
from tests.conftest import REPO


def readme_table() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- models-table:begin -->\n(.*?)\n<!-- models-table:end -->", text, re.S)
    assert match, "README has no generated models table"
    return match.group(1)


def test_readme_models_table_is_the_codes_table() -> None:
    assert readme_table() == catalog.markdown_table()


def test_every_row_names_a_model_a_host_a_source_and_a_price() -> None:
    hosts = {"modelark", "volcengine", "evolink", "atlascloud", "apiframe", "fal", "replicate"}
    assert set(catalog.HOSTS) == hosts
    for offer in catalog.OFFERS:
        assert catalog.model(offer.model) is not None
        assert offer.source and offer.price.source and offer.price.usd > 0
        assert offer.batch in catalog.BATCH_KINDS and set(offer.ids) <= set(catalog.MODES)
        assert (offer.batch == "none") == (offer.max_count == 1)
    assert len({(o.host, o.model) for o in catalog.OFFERS}) == len(catalog.OFFERS)


def test_new_models_are_sold_where_the_hosts_sell_them() -> None:
    assert set(catalog.hosts_of("seedream-5.0-lite")) == {
        "modelark", "volcengine", "evolink", "atlascloud", "apiframe", "fal", "replicate"}
    assert set(catalog.hosts_of("seedream-5.0-pro")) == {"modelark", "apiframe", "fal"}
    assert catalog.offer("modelark", "seedream-5.0-lite").id == "seedream-5-0-260128"
    assert catalog.offer("volcengine", "seedream-5.0-lite").id == "doubao-seedream-5-0-260128"
    assert catalog.offer("fal", "seedream-5.0-lite").model_id(True, False) == "fal-ai/bytedance/seedream/v5/lite/edit"
    assert catalog.offer("fal", "seedream-5.0-pro").id == "bytedance/seedream/v5/pro/text-to-image"
    assert catalog.offer("atlascloud", "seedream-5.0-lite").model_id(True, True) == \
        "bytedance/seedream-v5.0-lite/edit-sequential"
    pro = catalog.offer("modelark", "seedream-5.0-pro")
    assert "sequential_image_generation" in pro.refuses and pro.max_references == 10 and pro.batch == "none"


def test_sizes_read_the_models_limits_from_the_table() -> None:
    for model in catalog.MODELS:
        limits = LIMITS[model.name]
        assert (limits.tiers, limits.min_pixels, limits.max_pixels) == (model.tiers, model.min_pixels, model.max_pixels)
    assert tiers("seedream-5.0-lite") == ("2K", "3K")
    assert resolve_size("3K", "seedream-5.0-lite") == (3072, 3072)
    assert resolve_size("16:9@3K", "seedream-5.0-lite") == (4096, 2304)
    assert resolve_size("16:9", "seedream-5.0-pro") == (2720, 1520)  # within 4,194,304 pixels
    assert resolve_size("16:9", "seedream-4.5") == (2848, 1600)  # unchanged for 4.x


@pytest.mark.parametrize("model, size, words", [
    ("seedream-5.0-lite", "4K", "seedream-5.0-lite has no 4K size; use 2K or 3K"),
    ("seedream-5.0-pro", "3K", "seedream-5.0-pro has no 3K size; use 1K or 2K"),
    ("seedream-5.0-pro", "2560x1920", "seedream-5.0-pro needs 921,600 to 4,194,304"),
])
def test_a_size_outside_a_model_names_the_limit(model: str, size: str, words: str) -> None:
    from assetbuild.spec.sizes import SizeError

    with pytest.raises(SizeError, match=re.escape(words)):
        resolve_size(size, model)


def test_price_rules_by_tier_and_by_extra_reference() -> None:
    pro = catalog.offer("modelark", "seedream-5.0-pro").price
    assert pro.per_image(1024 * 1024) == pytest.approx(0.045)
    assert pro.per_image(2048 * 2048) == pytest.approx(0.09)
    assert pro.per_image(2048 * 2048, references=3) == pytest.approx(0.09 + 2 * 0.003)
    assert pro.per_image(1024 * 1024, references=1) == pytest.approx(0.045)  # the first reference is free
    assert pro.rule() == ("$0.045/image up to 2,359,296 px (1K), else $0.09/image "
                          "+ $0.003 per reference after the first")
    assert catalog.offer("modelark", "seedream-5.0-lite").price.rule() == "$0.035/image"


def test_providers_price_from_the_table_and_the_config_overrides() -> None:
    evolink = create_provider("e", ProviderConfig(type="evolink"))
    assert evolink.price_per_image("seedream-4.0") == pytest.approx(0.0222)  # the seeds, not $0.03
    assert evolink.price_per_image("seedream-4.5") == pytest.approx(0.0313)
    ark = create_provider("a", ProviderConfig(type="modelark"))
    assert ark.price_per_image("seedream-5.0-pro", 1024 * 1024, 2) == pytest.approx(0.048)
    rule, source = ark.price_rule("seedream-5.0-pro")
    assert "per reference after the first" in rule and "[3p]" in source
    pinned = create_provider("p", ProviderConfig(type="modelark", price_per_image=0.5))
    assert pinned.price_per_image("seedream-5.0-pro", 2048 * 2048, 5) == 0.5
    assert pinned.price_rule("seedream-4.0") == ("$0.5/image", "[providers.p] price_per_image")


def test_models_command_prints_the_table_and_json(project) -> None:
    res = project.run("models")
    assert res.exit_code == 0
    assert "seedream-5.0-pro on modelark: seedream-5-0-pro-260628" in res.output
    assert "never sent sequential_image_generation" in res.output
    rows = json.loads(project.run("models", "--json").output)
    assert len(rows) == len(catalog.OFFERS)
    evolink = next(r for r in rows if (r["host"], r["model"]) == ("evolink", "seedream-4.0"))
    assert evolink["price_usd"] == 0.0222 and "seeds" in evolink["price_source"]


def test_explain_shows_the_price_rule_an_asset_gets(project) -> None:
    project.manifest("""
        [project]
        provider = "ev"
        [providers.ev]
        type = "evolink"
        [assets.hero]
        prompt = "a fox"
        count = 2
    """)
    res = project.run("explain", "hero")
    assert res.exit_code == 0, res.output
    assert "price        $0.0222/image: $0.0222/image x 2 images (source: evolink seeds" in res.output
    info = json.loads(project.run("explain", "hero", "--json").output)
    assert info["price"]["usd"] == pytest.approx(0.0444)
    plan = json.loads(project.run("plan", "--json", env={"EVOLINK_API_KEY": "k"}).output)
    assert plan["estimated_cost"] == pytest.approx(0.0444)
