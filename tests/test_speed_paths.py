"""The fast paths of issue 7 give what the plain ones gave: the CLI's JSON text, the build
order, the manifest's line numbers; generated JPEGs are converted by the finisher threads
(the worker is free for the next request) with the same outputs and the same failure; a
no-op run starts no thread; loading and planning leave the collector as they found it; a remote
provider's clients share one set of TLS settings and httpx's command-line tool is never loaded."""

from __future__ import annotations

import gc
import io
import json
import random
import subprocess
import sys
import threading
from typing import Any

import networkx as nx
import pytest
from PIL import Image

from assetbuild.run.executor import Outcome
from assetbuild.spec.graph import _ordered
from assetbuild.jsonout import dumps
from assetbuild.spec.manifest import Locator
from assetbuild.providers.base import GenerationResult
from assetbuild.providers.local import LocalProvider

from .test_executor import Setup, node


def test_json_output_is_json_dumps_with_indent_2_byte_for_byte():
    rng = random.Random(7)
    leaves = ["", "a", "é ü", "line\nbreak \"quoted\" \\", "\u2028", "😀", 0, -3, 10**30, 1.5, 0.1, 1e300, -0.0,
              float("nan"), float("inf"), True, False, None]

    def value(depth: int = 0) -> Any:
        r = rng.random()
        if depth > 3 or r < 0.5:
            return rng.choice(leaves)
        if r < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {f"{rng.choice(['k', 'é', 'a b', ''])}{i}": value(depth + 1) for i in range(rng.randint(0, 4))}

    for _ in range(3000):
        v = value()
        assert dumps(v) == json.dumps(v, indent=2)
    plan = {"actions": [{"asset": "hero[color=red]", "action": "generate", "reasons": ["new asset"],
                         "codes": ["new-asset"], "cost": 0.03}, {"asset": "x", "action": "up-to-date",
                                                                 "reasons": [], "codes": [], "cost": 0.0}],
            "estimated_cost": 0.03}
    assert dumps(plan) == json.dumps(plan, indent=2)
    with pytest.raises(TypeError):
        dumps({"when": object()})


class _N:
    def __init__(self, nid: str, ups: list[str]):
        self.id, self.upstream = nid, tuple(dict.fromkeys(ups))


def test_the_build_order_is_networkx_lexicographical_topological_sort_and_cycles_give_none():
    rng = random.Random(3)
    cycles = 0
    for trial in range(400):
        ids = list(dict.fromkeys(f"n{rng.randint(0, 999)}" for _ in range(rng.randint(0, 30))))
        nodes = {}
        for i, nid in enumerate(ids):
            ups = [rng.choice(ids) for _ in range(rng.randint(0, 3))]
            if trial % 3:  # mostly acyclic; every third graph may have cycles and self-references
                ups = [u for u in ups if ids.index(u) < i]
            nodes[nid] = _N(nid, ups)
        dag = nx.DiGraph()
        dag.add_nodes_from(nodes)
        dag.add_edges_from((up, n.id) for n in nodes.values() for up in n.upstream)
        position = {nid: i for i, nid in enumerate(nodes)}
        try:
            want = list(nx.lexicographical_topological_sort(dag, key=position.__getitem__))
        except nx.NetworkXUnfeasible:
            want, cycles = None, cycles + 1
        assert _ordered(nodes) == want
    assert cycles > 10


def test_the_locator_finds_headers_and_keys_around_comments_and_multiline_strings():
    text = ('# comment\n[project]\nname = "x"\n\n[assets.a]\nprompt = """\n[assets.fake]\nkey = 1\n"""\n'
            "  size = '1x1'\n[assets.\"b.c\"]\n\"q.k\" = 2\n  # [assets.not]\nd . e = 3\n")
    lines = Locator(text).lines
    assert lines[("project",)] == 2 and lines[("project", "name")] == 3
    assert lines[("assets",)] == 5 and lines[("assets", "a")] == 5 and lines[("assets", "a", "prompt")] == 6
    assert ("assets", "fake") not in lines and ("assets", "a", "key") not in lines
    assert lines[("assets", "a", "size")] == 10
    assert lines[("assets", "b.c")] == 11 and lines[("assets", "b.c", "q.k")] == 12
    assert ("assets", "not") not in lines and lines[("assets", "b.c", "d", "e")] == 14


def _jpeg(side: int, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class JpegHost:
    """Returns JPEGs, as the Seedream hosts do; ``bad`` gets bytes that only look like one."""

    type = "local"
    name = "local"
    key_env = None  # it reads no key

    def __init__(self, bad: str = ""):
        self.bad = bad
        self.converting_threads: set[str] = set()

    def generate(self, request: Any, jobs: Any) -> GenerationResult:
        data = b"\xff\xd8\xff\xe0 not really a jpeg" if request.asset_id == self.bad else _jpeg(16, (200, 30, 30))
        return GenerationResult(images=(data,), model_id="jpeg-host", request_id=f"r-{request.asset_id}")

    def interrupt(self) -> None:
        pass


def test_generated_jpegs_are_converted_by_the_finisher_and_written_as_png(tmp_path, monkeypatch):
    import assetbuild.store.imageinfo as imageinfo

    threads: list[str] = []
    original = imageinfo.as_png

    def as_png(data: bytes) -> bytes:
        threads.append(threading.current_thread().name)
        return original(data)

    monkeypatch.setattr(imageinfo, "as_png", as_png)
    s = Setup(tmp_path, JpegHost())
    results, _ = s.run([node("a"), node("b", "a"), node("c")], jobs=2)
    assert [r.status for r in results] == [Outcome.GENERATED] * 3
    assert threads and all(name.startswith("assetbuild-finish") for name in threads)
    for nid in "abc":
        data = (s.root / f"out/{nid}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        entry = s.lock.entries[nid]
        record = s.cache.result(entry.fingerprint)
        assert record is not None and record.images == (entry.outputs[0].sha256,)
        assert s.cache.get_blob(record.originals[0]).startswith(b"\xff\xd8")  # the original, as paid for
    assert sorted(s.lock.entries) == ["a", "b", "c"]


def test_an_image_that_cannot_be_converted_fails_its_asset_only_and_its_original_is_kept(tmp_path):
    s = Setup(tmp_path, JpegHost(bad="b"))
    results, _ = s.run([node("a"), node("b"), node("c", "b"), node("d")], jobs=2, keep_going=True)
    status = {r.id: r for r in results}
    assert status["b"].status is Outcome.FAILED and "cannot be converted" in (status["b"].error or "")
    assert status["c"].status is Outcome.BLOCKED
    assert status["a"].status is status["d"].status is Outcome.GENERATED
    assert sorted(s.lock.entries) == ["a", "d"]
    assert len(s.cache.orphans()) == 0 and len(s.cache.records()) == 3  # b's original is indexed: never paid twice


def test_a_noop_run_starts_no_thread(tmp_path):
    s = Setup(tmp_path)
    nodes = [node("a"), node("b", "a")]
    s.run(nodes)
    s = Setup(tmp_path)
    seen: list[list[str]] = []

    def on_event(event: Any) -> None:
        seen.append([t.name for t in threading.enumerate() if t.name.startswith("assetbuild")])

    results, _ = s.run(nodes, on_event=on_event)
    assert [r.status for r in results] == [Outcome.UP_TO_DATE] * 2
    assert seen and not any(seen)


def test_loading_and_planning_leave_the_collector_as_they_found_it(project):
    from assetbuild.api import Project

    project.manifest('[assets.a]\nprompt = "a"\nsize = "16x16"\n')
    frozen = gc.get_freeze_count()
    assert gc.isenabled()
    p = Project.load(project.root, env=project.env)
    p.plan()
    p.close()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()
    try:
        Project.load(project.root, env=project.env).plan()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_memo_records_are_the_dataclasses_their_init_makes():
    import dataclasses

    from assetbuild.spec.blueprint import _decode, _encode
    from assetbuild.store.lockfile import LockEntry, OutputRecord, _from_memo_row, _memo_row
    from assetbuild.spec.nodes import Node, Ref, RefSite

    site = RefSite("assetbuild.toml", 7, "assets.a.references", 1000)
    n = Node(id="a[c=red]", asset="a", variant=(("c", "red"),), prompt="p", provider="ark", provider_type="modelark",
             model="seedream-4.0", size="1K", width=1024, height=1024, count=2, seed=3, watermark=True,
             params={"x": [1]}, references=(Ref("r.png", path="r.png", site=site),
                                            Ref("@b#2", node="b", index=1, paths=("out/b-2.png",))),
             outputs=("out/a-1.png", "out/a-2.png"), kind="generate", steps=())
    back = _decode(json_round(_encode(n)))
    assert back == n and repr(back) == repr(n)
    assert list(back.__dict__) == [f.name for f in dataclasses.fields(Node)]
    assert list(back.references[0].__dict__) == [f.name for f in dataclasses.fields(Ref)]
    assert list(back.references[0].site.__dict__) == [f.name for f in dataclasses.fields(RefSite)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.prompt = "changed"  # type: ignore[misc]
    entry = LockEntry("f" * 64, "ark", "m-1", "2026-01-01T00:00:00Z", 0.03, {"prompt": "p", "references": []},
                      (OutputRecord("out/a.png", "a" * 64, 8, 8),), "req-1")
    optional = {"candidate_images": ("a" * 64, "b" * 64), "pick": 2, "adopted": "c" * 64}  # every field set
    entry = dataclasses.replace(entry, **{k: v for k, v in optional.items() if hasattr(entry, k)})
    again = _from_memo_row(json_round(_memo_row(entry)))
    assert again == entry and list(again.__dict__) == [f.name for f in dataclasses.fields(LockEntry)]
    assert list(again.outputs[0].__dict__) == [f.name for f in dataclasses.fields(OutputRecord)]


def json_round(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_malloc_is_tuned_only_for_a_whole_process_and_once():
    import sys

    from assetbuild.process import Tuning

    library = Tuning(whole_process=False)
    library.big_blocks_returned()
    assert library.done is False  # a library caller's process is left as it is
    command = Tuning(whole_process=True)
    command.big_blocks_returned()
    command.big_blocks_returned()
    assert command.done is True
    assert "ctypes" in sys.modules or not sys.platform.startswith("linux")


def test_every_http_client_shares_one_tls_context_per_ca_setting(tmp_path, monkeypatch):
    from assetbuild.providers._http import HttpClient, RateLimiter
    from assetbuild.clock import SystemClock

    def client() -> HttpClient:
        return HttpClient(provider="p", base_url="https://host.invalid", headers={}, secret=None, timeout_s=5,
                          max_attempts=1, limiter=RateLimiter(1, None, SystemClock()))

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    a, b = client(), client()
    contexts = {id(pool._ssl_context) for c in (a, b) for pool in (c._api._transport._pool, c._cdn._transport._pool)}
    assert len(contexts) == 1  # the CA bundle is loaded once, not once per client
    import trustme  # a CA of our own, as SSL_CERT_FILE names one

    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    c = client()
    assert c._api._transport._pool._ssl_context is not a._api._transport._pool._ssl_context  # the setting is honoured
    for each in (a, b, c):
        each.close()


def test_a_remote_provider_does_not_load_httpx_command_line_tool():
    code = ("import sys; import assetbuild.providers.modelark, httpx; "
            "print(sorted(m for m in ('httpx._main', 'rich', 'pygments') if sys.modules.get(m) is not None))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"
