"""Key hygiene end to end (issue 6, item 7): for every host, keys with surrounding whitespace
and characters that JSON, reprs, URLs and HTML write differently, against emulators that echo
the request's headers (in every one of those forms) in long error bodies, every CLI command run
with ``-v``: the key appears nowhere, not in any output, file, lock or cache (SQLite included).
A key no HTTP header can carry is one line naming its variable, exit 2, nothing sent."""

from __future__ import annotations

import html
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ProjectDir, png
from tests.fakes.apiframe import ApiframeEmulator
from tests.fakes.ark import ArkEmulator
from tests.fakes.atlascloud import AtlasCloudEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.evolink import EvolinkEmulator
from tests.fakes.fal import FalEmulator
from tests.fakes.replicate import ReplicateEmulator
from tests.fakes.server import Request

HOSTS: dict[str, tuple[Any, str, str | None]] = {  # emulator, submit route, poll route
    "modelark": (ArkEmulator, "generate", None),
    "volcengine": (lambda **kw: ArkEmulator(platform="volcengine", **kw), "generate", None),
    "evolink": (EvolinkEmulator, "generate", "task"),
    "atlascloud": (AtlasCloudEmulator, "generate", "prediction"),
    "apiframe": (ApiframeEmulator, "submit", "job"),
    "fal": (FalEmulator, "submit", "status"),
    "replicate": (ReplicateEmulator, "create", "get"),
}
# What the environment holds; what is sent (and must never show) is the key stripped.
KEYS = [
    "sk-live-Newline-7f3a9c\n",
    "  sk-live-Spaces-7f3a9c \t",
    'sk-live-"Quoted"-7f3a9c',
    "sk-live-Back\\slash-7f3a9c",
    "sk-live-100%-Pct-7f3a9c",
    "sk-live-<Amp&Lt>-'7f3a9c'\r\n",
]
PROJECT = """
[project]
provider = "h"

[providers.h]
type = "{host}"
base_url = "{url}"
api_key_env = "SECRET_KEY"
poll_interval_s = 0.01
max_attempts = 2

[defaults]
size = "1024x1024"

[assets.t2i]
prompt = "{prompt}"

[assets.edit]
prompt = "the same at night"
references = ["ref.png"]
"""


def forms(key: str) -> list[str]:
    """The key as JSON, a repr, a URL, HTML and bytes would write it."""
    return sorted({key, json.dumps(key)[1:-1], repr(key)[1:-1], urllib.parse.quote(key, safe=""),
                   urllib.parse.quote_plus(key), html.escape(key), repr(key.encode())[2:-1]})


def echo(prefix: int):
    """An error body that echoes every header the host received, in every form, after
    ``prefix`` characters of filler (past 300, the old cut fell inside the key)."""
    def body(req: Request) -> bytes:
        values = list(req.headers.values())
        echoed = " | ".join(form for value in values for form in forms(value))
        return ("e" * prefix + " headers: " + echoed + " " + "z" * 400).encode()
    return body


def scan(roots: list[Path], secret: str) -> list[str]:
    """Every file under ``roots`` holding ``secret`` in any of its forms."""
    needles = [form.encode() for form in forms(secret)]
    return [str(path) for root in roots for path in root.rglob("*")
            if path.is_file() and any(needle in path.read_bytes() for needle in needles)]


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_the_key_appears_nowhere_whatever_it_holds_and_whatever_the_host_echoes(
        tmp_path: Path, host: str) -> None:
    make, submit, poll = HOSTS[host]
    outputs: list[str] = []
    for index, raw in enumerate(KEYS):
        key = raw.strip()
        project = ProjectDir(tmp_path / f"p{index}", tmp_path / f"cache{index}")
        project.root.mkdir()
        project.clock = FakeClock()  # backoffs and polls cost no wall time
        project.env["SECRET_KEY"] = raw
        project.write("ref.png", png(64, 48))
        with make(api_key=key) as emu:
            def run(*args: str, prompt: str = "a fox on a hill") -> Any:
                project.manifest(PROJECT.format(host=host, url=emu.base_url, prompt=prompt))
                res = project.run("-v", *args)
                outputs.extend([res.output, res.stderr])
                return res

            assert run("build", "-j", "1").exit_code == 0
            for args in (("plan", "--json"), ("check",), ("explain", "t2i"), ("graph",), ("providers",)):
                assert run(*args).exit_code == 0, args
            for prefix in (20, 290):  # the echo well inside, and straddling, the 300-character cut
                emu.fail_next(submit, status=400, body=echo(prefix))
                res = run("build", "-j", "1", prompt=f"a fox, take {prefix}")
                assert res.exit_code == 1 and "HTTP 400" in res.output, res.output
            emu.fail_next(submit, status=502, body=echo(20), times=5)
            assert run("build", "-j", "1", prompt="a fox, 502").exit_code == 1
            if poll is not None:
                emu.fail_next(poll, status=503, body=echo(20), times=5)
                assert run("build", "-j", "1", prompt="a fox, polled").exit_code == 1
        for form in forms(key):
            assert not any(form in text for text in outputs), (raw, form)
        assert scan([project.root, tmp_path / f"cache{index}"], key) == []


@pytest.mark.parametrize("raw", ["sk-live-é-7f3a9c", "sk-live-\x00-7f3a9c", "sk-live\n-7f3a9c"],
                         ids=["non-ascii", "nul", "inner-newline"])
def test_a_key_headers_cannot_carry_stops_the_build_before_anything_is_sent(project: ProjectDir, raw: str) -> None:
    with ArkEmulator(api_key=raw) as emu:
        project.env["SECRET_KEY"] = raw
        project.write("ref.png", png(64, 48))
        project.manifest(PROJECT.format(host="modelark", url=emu.base_url, prompt="a fox"))
        res = project.run("-v", "build")
        assert res.exit_code == 2 and emu.requests == []
        position = next(i for i, char in enumerate(raw, 1) if not " " <= char <= "~")
        assert res.stderr == ("error: provider h: the environment variable SECRET_KEY contains a character HTTP "
                              "headers cannot carry (" + ("a non-ASCII" if "é" in raw else "a control")
                              + f" character at position {position}); set it to the key alone\n")
        assert "7f3a9c" not in res.stderr
