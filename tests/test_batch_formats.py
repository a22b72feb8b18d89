"""batch = "separate" (N single-image requests, each its own job and cache entry), output_format,
a pinned Replicate version, and what they do to the fingerprint (nothing, when left out)."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest

from tests.conftest import ProjectDir
from tests.fakes.ark import ArkEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.replicate import VERSION_IDS, ReplicateEmulator
from tests.test_fingerprint import BASE, fp

KEY = "k-batch-SECRET"

MANIFEST = """
[project]
provider = "h"
model = "{model}"

[providers.h]
type = "{type}"
base_url = "{url}"
api_key_env = "K"
poll_interval_s = 0.01
max_attempts = 1
{provider_extra}

[assets.panels]
prompt = "a fox at dawn"
size = "2K"
{asset}
"""


def setup(project: ProjectDir, emu: Any, *, type_: str, model: str, asset: str, provider_extra: str = "") -> None:
    project.clock = FakeClock()
    project.env["K"] = KEY
    project.manifest(MANIFEST.format(type=type_, url=emu.base_url, model=model, asset=asset,
                                     provider_extra=provider_extra))


def lock(project: ProjectDir) -> dict[str, Any]:
    return tomllib.loads(project.read("assetbuild.lock").decode())["assets"]


def test_separate_batch_is_n_single_image_requests_and_resumes_per_image(project: ProjectDir) -> None:
    with ReplicateEmulator(api_key=KEY) as emu:
        setup(project, emu, type_="replicate", model="seedream-4.5", asset='count = 3\nbatch = "separate"')
        emu.fail_next_job("E001", "the model crashed", after=2)  # images 1 and 2 come, image 3 fails
        first = project.run("build", "-j", "1")
        assert first.exit_code == 1
        assert len(emu.submits) == 3
        for submit in emu.submits:  # each one image, no batch, no count in the prompt
            inputs = submit.json["input"]
            assert inputs["max_images"] == 1 and inputs["sequential_image_generation"] == "disabled"
            assert inputs["prompt"] == "a fox at dawn"

        again = project.run("build", "--json", "-j", "1")
        assert again.exit_code == 0, again.stderr
        assert len(emu.submits) == 4  # only image 3 was asked for again: 1 and 2 were cached
        entry = lock(project)["panels"]
        assert entry["batch"] == "separate" and len(entry["outputs"]) == 3
        assert json.loads(again.output)["generated"] == 1
        assert project.run("build", "--json").exit_code == 0 and len(emu.submits) == 4  # up to date


def test_separate_batch_makes_5_pro_counts_possible_and_sequential_says_why_not(project: ProjectDir) -> None:
    with ArkEmulator(api_key=KEY) as ark:
        setup(project, ark, type_="modelark", model="seedream-5.0-pro", asset="candidates = 2")
        refused = project.run("plan")
        assert refused.exit_code == 2 and 'needs batch = "separate"' in refused.stderr
        setup(project, ark, type_="modelark", model="seedream-5.0-pro", asset='candidates = 2\nbatch = "separate"')
        built = project.run("build", "--json")
        assert built.exit_code == 0, built.stderr
        assert len(ark.submits) == 2
        assert all("sequential_image_generation" not in s.json for s in ark.submits)
        entry = lock(project)["panels"]
        assert len(entry["candidate_images"]) == 2 and entry["cost_usd"] == pytest.approx(2 * 0.09)


def test_output_format_is_sent_recorded_and_in_the_fingerprint(project: ProjectDir) -> None:
    with ReplicateEmulator(api_key=KEY) as emu:
        setup(project, emu, type_="replicate", model="seedream-5.0-lite", asset='output_format = "jpeg"')
        res = project.run("build", "--json")
        assert res.exit_code == 0, res.stderr
        assert emu.submits[0].json["input"]["output_format"] == "jpeg"
        assert lock(project)["panels"]["output_format"] == "jpeg"
        explain = project.run("explain", "panels")
        assert 'output_format "jpeg"' in explain.output
        setup(project, emu, type_="replicate", model="seedream-5.0-lite", asset='output_format = "png"')
        plan = project.run("plan")
        assert "output_format changed (jpeg -> png)" in plan.output


def test_output_format_where_the_host_has_none_is_one_line(project: ProjectDir) -> None:
    with ArkEmulator(api_key=KEY) as ark:
        setup(project, ark, type_="modelark", model="seedream-4.5", asset='output_format = "png"')
        res = project.run("plan")
        assert res.exit_code == 2
        assert "assets.panels.output_format: seedream-4.5 on modelark has no output_format option" in res.stderr


def test_a_pinned_replicate_version_is_sent_and_recorded(project: ProjectDir) -> None:
    version = VERSION_IDS["4.5"]
    with ReplicateEmulator(api_key=KEY) as emu:
        setup(project, emu, type_="replicate", model="seedream-4.5", asset="",
              provider_extra=f'version = {{ "seedream-4.5" = "{version}" }}')
        res = project.run("build", "--json")
        assert res.exit_code == 0, res.stderr
        (submit,) = emu.submits
        assert submit.path == "/v1/predictions" and submit.json["version"] == version
        assert lock(project)["panels"]["model_id"] == f"bytedance/seedream-4.5:{version}"


def test_version_on_a_host_without_versions_is_one_line(project: ProjectDir) -> None:
    with ArkEmulator(api_key=KEY) as ark:
        setup(project, ark, type_="modelark", model="seedream-4.5", asset="",
              provider_extra='version = { "seedream-4.5" = "abc" }')
        res = project.run("plan")
        assert res.exit_code == 2 and "providers.h.version: modelark has no model versions to pin" in res.stderr


def test_default_batch_and_no_output_format_leave_the_fingerprint_alone(tmp_path: Any) -> None:
    base = fp(tmp_path, BASE)
    assert fp(tmp_path, {**BASE, "batch": '"sequential"'}) == base
    assert fp(tmp_path, {**BASE, "batch": '"separate"'}) != base
    assert fp(tmp_path, {**BASE, "count": "2", "batch": '"separate"'}) != fp(tmp_path, {**BASE, "count": "2"})
    lite = {**BASE, "model": '"seedream-5.0-lite"'}
    assert fp(tmp_path, {**lite, "output_format": '"png"'}) != fp(tmp_path, lite)
    assert fp(tmp_path, {**lite, "output_format": '"png"'}) != fp(tmp_path, {**lite, "output_format": '"jpeg"'})
