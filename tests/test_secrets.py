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


# -- echoed into request ids, lowercased, cut short; AWS credentials (issue 17 items 7, 8) ----

SECRET = "sk-REL-SECRET-0123456789abcdef"


def leaks(secret: str) -> list[str]:
    """Every string that must not show: each form, lowercased, and its first 8 characters."""
    from assetbuild.store.redaction import MIN_PREFIX

    found = set(forms(secret)) | {f.lower() for f in forms(secret)}
    return sorted(found | {secret[:MIN_PREFIX], secret[:MIN_PREFIX].lower()}, key=len)


def holding(roots: list[Path], secret: str) -> list[str]:
    """Every file under ``roots`` holding ``secret`` in any form, any case or an 8-character prefix."""
    needles = [n.encode() for n in leaks(secret)]
    return [str(path) for root in roots for path in root.rglob("*")
            if path.is_file() and any(n in path.read_bytes().lower() for n in (x.lower() for x in needles))]


class EchoingArk(ArkEmulator):
    """Ark, but its X-Request-Id is the Authorization header it received ("Bearer sk-...")."""

    def _generate(self, req: Request) -> Any:
        response = super()._generate(req)
        response.headers["X-Request-Id"] = req.headers.get("authorization", "")
        return response


def test_a_key_echoed_as_request_id_lowercased_or_cut_short_is_stored_and_shown_nowhere(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path / "p", tmp_path / "cache")
    project.root.mkdir()
    project.clock = FakeClock()
    project.env["SECRET_KEY"] = SECRET
    project.write("ref.png", png(64, 48))
    said: list[str] = []
    with EchoingArk(api_key=SECRET) as emu:
        project.manifest(PROJECT.format(host="modelark", url=emu.base_url, prompt="a fox on a hill"))
        res = project.run("-v", "build", "-j", "1")
        said += [res.output, res.stderr]
        assert res.exit_code == 0, res.output + res.stderr
        lock = (project.root / "assetbuild.lock").read_text()
        assert 'request_id = "Bearer ***"' in lock
        for prompt in ("a fox, lowercased", "a fox, cut short"):
            emu.fail_next("generate", status=401, headers={"X-Request-Id": f"Bearer {SECRET.lower()}"},
                          body={"error": {"code": "AuthenticationError", "type": "Unauthorized",
                                          "message": f"key {SECRET[:20]}... is invalid (bearer {SECRET.lower()})"}})
            project.manifest(PROJECT.format(host="modelark", url=emu.base_url, prompt=prompt))
            res = project.run("-v", "build", "-j", "1")
            said += [res.output, res.stderr]
            assert res.exit_code == 1 and "is invalid" in res.output, res.output
        for args in (("plan", "--json"), ("explain", "t2i"), ("report", "-o", "r.html")):
            res = project.run(*args)
            said += [res.output, res.stderr]
    assert not [n for n in leaks(SECRET) for text in said if n.lower() in text.lower()]
    assert holding([project.root, tmp_path / "cache"], SECRET) == []


AWS = {"AWS_ACCESS_KEY_ID": "AKIAECHOEXAMPLE7Q2W", "AWS_SECRET_ACCESS_KEY": "wJalrEchoSecretKey/Example0123456789abcd",
       "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEchoToken" + "Qz9" * 60, "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_EC2_METADATA_DISABLED": "true"}


def test_an_s3_endpoint_echoing_the_session_token_in_a_403_gets_it_printed_nowhere(tmp_path: Path) -> None:
    from tests.fakes.s3echo import S3EchoServer

    project = ProjectDir(tmp_path / "p", tmp_path / "cache")
    project.root.mkdir()
    project.env.update(AWS)
    with S3EchoServer() as s3:
        project.manifest(f"""
[project]
provider = "local"
[cache]
remote = "s3://team-assets/kit"
endpoint_url = "{s3.endpoint}"
timeout_s = 2
[assets.a]
prompt = "a fox"
size = "32x32"
""")
        said = []
        for args in (("cache", "info", "--json"), ("cache", "verify", "--remote"),
                     ("cache", "gc", "--remote", "--dry-run"), ("build",)):
            res = project.run(*args)
            said += [res.output, res.stderr]
            if args[0] == "cache":
                assert res.exit_code == 1 and "access denied" in res.output + res.stderr, (args, res.output, res.stderr)
        assert s3.denied >= 4
    text = "\n".join(said)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert not [n for n in leaks(AWS[name]) if n.lower() in text.lower()], name
        assert holding([project.root, tmp_path / "cache"], AWS[name]) == []
    assert "***" in text  # the echo was there, and redacted
