"""Issue 9, per-provider blocking: a missing API key blocks only the assets whose provider
(and every fallback of it) has no key; the rest builds, the build exits 1 and names the
variable; plan says so per asset (``missing-key``) with one warning per variable, and
``plan --assume-keys`` shows what a build with the keys would generate and cost. Against
the Ark emulator on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ProjectDir, png
from tests.fakes.ark import ArkEmulator
from tests.fakes.clock import FakeClock

KEY = "sk-keys-test-91c2"

TWO_PROVIDERS = """
[project]
provider = "local"

[providers.ark]
type = "modelark"
base_url = "{url}"
api_key_env = "ARK_TEST_KEY"
price_per_image = 0.25

[providers.other]
type = "modelark"
base_url = "{url}"
api_key_env = "OTHER_TEST_KEY"
price_per_image = 0.5

[defaults]
size = "2K"

[assets.logo]
prompt = "a local logo"
size = "64x64"

[assets.logo-mono]
from = "@logo"
steps = [{{ op = "grayscale" }}]

[assets.hero]
prompt = "a hero from ark"
provider = "ark"

[assets.poster]
prompt = "a poster from the other host"
provider = "other"
references = ["ref.png"]

[assets.hero-crop]
from = "@hero"
steps = [{{ op = "fit", size = "64x64" }}]

[assets.poster-night]
prompt = "the poster at night"
provider = "other"
references = ["@poster"]
"""


@pytest.fixture
def ark() -> Any:
    with ArkEmulator(api_key=KEY) as emu:
        yield emu


def setup(project: ProjectDir, emu: Any, manifest: str = TWO_PROVIDERS) -> None:
    project.clock = FakeClock()
    project.write("ref.png", png(64, 48, (200, 30, 30)))
    project.manifest(manifest.format(url=emu.base_url))


def plan_json(project: ProjectDir, *args: str) -> dict[str, Any]:
    res = project.run("plan", "--json", *args)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.output)


def test_one_keyless_provider_blocks_only_its_assets_and_the_build_names_the_variable(project, ark):  # acc. 5
    setup(project, ark)
    project.env["ARK_TEST_KEY"] = KEY  # ark has its key; other (OTHER_TEST_KEY) has none
    res = project.run("build", "--json", "-j", "2")
    assert res.exit_code == 1
    summary = json.loads(res.output)
    assets = summary["assets"]
    assert {a["asset"] for a in assets["generated"]} == {"logo", "hero"}
    assert {a["asset"] for a in assets["derived"]} == {"logo-mono", "hero-crop"}
    blocked = {a["asset"]: a for a in assets["blocked"]}
    assert set(blocked) == {"poster", "poster-night"}
    assert blocked["poster"]["codes"] == ["new-asset", "missing-key"]
    assert blocked["poster"]["reasons"][-1] == "API key not set: set the environment variable OTHER_TEST_KEY"
    assert blocked["poster-night"]["codes"] == ["upstream-unbuilt"]
    assert summary["missing_keys"] == [{"variable": "OTHER_TEST_KEY", "providers": ["other"], "assets": ["poster"]}]
    assert ("error: 1 asset(s) of provider other not built: set the environment variable OTHER_TEST_KEY "
            "to its API key") in res.stderr
    assert project.calls.assets == {"logo", "hero"}  # nothing was sent for the keyless host
    assert len([r for r in ark.requests if r.method == "POST"]) == 1
    for rel in ("assets/logo.png", "assets/logo-mono.png", "assets/hero.png", "assets/hero-crop.png"):
        assert (project.root / rel).is_file()
    assert not (project.root / "assets/poster.png").exists()
    lock = (project.root / "assetbuild.lock").read_text()
    assert "[assets.hero]" in lock and "[assets.poster]" not in lock

    # with the key set, the rest builds and nothing built is paid for again
    project.env["OTHER_TEST_KEY"] = KEY
    res = project.run("build", "--json")
    assert res.exit_code == 0, res.stderr
    assert project.calls.assets == {"poster", "poster-night"}
    assert json.loads(res.output)["missing_keys"] == []


def test_a_local_only_asset_set_still_builds_with_no_key_at_all(project, ark):
    setup(project, ark)
    res = project.run("build")
    assert res.exit_code == 1
    assert "blocked    hero: new asset; API key not set: set the environment variable ARK_TEST_KEY" in res.output
    assert "set the environment variable ARK_TEST_KEY to its API key" in res.stderr
    assert "set the environment variable OTHER_TEST_KEY to its API key" in res.stderr
    assert "build: 1 generated, 0 restored, 1 derived" in res.output
    assert ark.requests == [] and project.calls.assets == {"logo"}


def test_plan_lists_the_missing_key_per_asset_with_one_warning_per_variable(project, ark):
    setup(project, ark)
    res = project.run("plan")
    assert res.exit_code == 0  # planning never needs a key
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: ARK_TEST_KEY is not set: 1 asset(s) of provider ark blocked; set it to build them "
        "(plan --assume-keys shows what they would cost)",
        "warning: OTHER_TEST_KEY is not set: 1 asset(s) of provider other blocked; set it to build them "
        "(plan --assume-keys shows what they would cost)",
    ]
    lines = {line.split()[1]: " ".join(line.split()) for line in res.output.splitlines()[:-1]}
    assert lines["poster"] == "blocked poster (new asset; API key not set: set the environment variable OTHER_TEST_KEY)"
    plan = plan_json(project)
    by = {a["asset"]: a for a in plan["actions"]}
    assert by["hero"]["action"] == "blocked" and by["hero"]["codes"] == ["new-asset", "missing-key"]
    assert by["poster-night"]["codes"] == ["upstream-unbuilt"] and by["logo"]["action"] == "generate"
    assert plan["estimated_cost"] == 0
    assert [m["variable"] for m in plan["missing_keys"]] == ["ARK_TEST_KEY", "OTHER_TEST_KEY"]


def test_two_assets_of_one_keyless_provider_give_one_warning(project, ark):
    setup(project, ark, TWO_PROVIDERS.replace('provider = "other"', 'provider = "ark"'))
    res = project.run("plan")
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "ARK_TEST_KEY is not set: 2 asset(s) of provider ark" in warnings[0]


def test_plan_assume_keys_shows_what_would_be_generated_and_its_cost(project, ark):
    setup(project, ark)
    plan = plan_json(project, "--assume-keys")
    by = {a["asset"]: a for a in plan["actions"]}
    assert {k: v["action"] for k, v in by.items()} == {
        "logo": "generate", "logo-mono": "derive", "hero": "generate", "poster": "generate",
        "hero-crop": "derive", "poster-night": "generate"}
    assert plan["estimated_cost"] == pytest.approx(0.25 + 0.5 + 0.5)
    assert plan["missing_keys"] == []
    assert "warning" not in project.run("plan", "--assume-keys").stderr
    assert ark.requests == []
    # check ignores keys: what makes an asset stale is the same with or without them
    res = project.run("check", "--json")
    assert res.exit_code == 1
    codes = {a["asset"]: a["codes"] for a in json.loads(res.output)["assets"]}
    assert codes["hero"] == ["new-asset"]


FALLBACK = """
[project]
provider = "primary"

[providers.primary]
type = "modelark"
base_url = "{url}"
api_key_env = "PRIMARY_TEST_KEY"
price_per_image = 0.9
fallback = "backup"

[providers.backup]
type = "modelark"
base_url = "{url}"
api_key_env = "BACKUP_TEST_KEY"
price_per_image = 0.04

[defaults]
size = "2K"

[assets.hero]
prompt = "a hero"
"""


def test_a_keyless_primary_goes_straight_to_a_keyed_fallback(project, ark):
    setup(project, ark, FALLBACK)
    project.env["BACKUP_TEST_KEY"] = KEY
    plan = plan_json(project)
    assert plan["actions"][0]["action"] == "generate" and plan["estimated_cost"] == 0.04  # the fallback's price
    res = project.run("build", "--json")
    assert res.exit_code == 0, res.stderr
    assert "fallback   hero: provider primary: PRIMARY_TEST_KEY is not set; trying backup" in res.stderr
    generated = json.loads(res.output)["assets"]["generated"]
    assert generated == [{"asset": "hero", "files": ["assets/hero.png"], "cost": generated[0]["cost"],
                          "provider": "backup"}]
    assert 'provider = "backup"' in (project.root / "assetbuild.lock").read_text()
    assert len([r for r in ark.requests if r.method == "POST"]) == 1


def test_a_chain_with_no_key_names_every_variable_and_a_build_with_nothing_else_exits_2(project, ark):
    setup(project, ark, FALLBACK)
    plan = plan_json(project)
    assert plan["actions"][0]["reasons"] == [
        "new asset", "API key not set: set the environment variable PRIMARY_TEST_KEY or BACKUP_TEST_KEY"]
    res = project.run("build")
    assert res.exit_code == 2 and ark.requests == []
    assert res.stderr == ("error: provider primary: set the environment variable PRIMARY_TEST_KEY or "
                          "BACKUP_TEST_KEY to your API key; nothing was sent\n")


def test_an_up_to_date_asset_needs_no_key(project, ark):
    setup(project, ark)
    project.env.update(ARK_TEST_KEY=KEY, OTHER_TEST_KEY=KEY)
    assert project.run("build").exit_code == 0
    del project.env["ARK_TEST_KEY"], project.env["OTHER_TEST_KEY"]
    seen = len(ark.requests)
    res = project.run("build")
    assert res.exit_code == 0 and "warning" not in res.stderr + res.output
    assert project.calls.total == 0 and len(ark.requests) == seen
    assert "missing-key" not in project.run("plan", "--json").output


def test_routing_owns_keys_fallbacks_and_prices_and_local_is_a_provider_like_any_other(project: ProjectDir):
    """One owner: the route (a keyless primary skipped to a keyed fallback), the variables that
    block a chain, and the price of the provider a node is routed to; local reads no key and
    costs nothing, with no special case."""
    from assetbuild.api import Project
    from assetbuild.plan.routing import Routing, calls_host

    project.write("ref.png", png(64, 48, (200, 30, 30)))
    project.manifest(TWO_PROVIDERS.format(url="http://127.0.0.1:9"))
    with Project.load(project.root, env={**project.env, "OTHER_TEST_KEY": KEY}) as p:
        routing = p.routing()
        assert isinstance(routing, Routing)
        logo, hero = p.nodes["logo"], p.nodes["hero"]
        assert routing.route("local") == "local" and routing.missing("local") is None and routing.price(logo) == 0.0
        assert not calls_host(logo) and calls_host(hero)
        assert routing.missing("ark") == "ARK_TEST_KEY" and routing.blocking("ark") == "ARK_TEST_KEY"
        assert routing.route("other") == "other" and routing.price(p.nodes["poster"]) == 0.5
        assert p.routing(assume_keys=True).route("ark") == "ark" and p.routing(assume_keys=True).price(hero) == 0.25
    project.manifest(FALLBACK.format(url="http://127.0.0.1:9"))
    with Project.load(project.root, env={**project.env, "BACKUP_TEST_KEY": KEY}) as p:
        routing = p.routing()
        assert routing.chain("primary") == ["primary", "backup"] and routing.route("primary") == "backup"
        assert routing.price(p.nodes["hero"]) == 0.04  # the provider it goes to, not the keyless primary
        assert routing.next_after("primary", ["primary"]) == "backup"
        assert routing.next_after("primary", ["primary", "backup"]) is None
