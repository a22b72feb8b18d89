"""Every reason code, produced the way a build meets it: by the planner on a small project's
files, lock and cache (the executor for the three a build finds while it runs), each with the
text a user reads. A new code without a case here fails ``test_every_code_has_a_case``."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pytest

from assetbuild.clock import SystemClock
from assetbuild.errors import ProviderUnavailable
from assetbuild.plan.choice import reroll_request
from assetbuild.plan.planner import COMPARED_INPUTS, Action, Planner, Unsettled
from assetbuild.plan.reasons import TEXT, Reason, ReasonCode, input_changed
from assetbuild.plan.routing import Routing
from assetbuild.providers.local import LocalProvider
from assetbuild.run.executor import Budget, Executor, Outcome
from assetbuild.spec.nodes import Node, Ref, RefSite
from assetbuild.store.cache import Cache, CacheRecord
from assetbuild.store.hashing import FileHasher, sha256_bytes
from assetbuild.store.lockfile import LockEntry, Lockfile, OutputRecord

SITE = RefSite(file="assetbuild.toml", line=3, key="assets.a.references", max_pixels=36_000_000)


def node(nid: str = "a", **changes: Any) -> Node:
    base = Node(id=nid, asset=nid, variant=(), prompt="a red fox", provider="local", provider_type="local",
                model="local", size="8x8", width=8, height=8, count=1, seed=None, watermark=False, params={},
                references=(), outputs=(f"out/{nid}.png",))
    return replace(base, **changes)


def derived(nid: str = "d", steps: tuple = ({"op": "grayscale"},)) -> Node:
    return node(nid, prompt="", provider="derive", provider_type="derive", model="derive", size="", width=0,
                height=0, references=(Ref("@up", node="up", paths=("out/up.png",)),), kind="derive", steps=steps)


def png(color: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(out, "PNG")
    return out.getvalue()


class Project:
    """A project folder with its lock, cache and file hasher, as a build leaves them."""

    def __init__(self, tmp: Path):
        self.root = tmp / "root"
        self.root.mkdir()
        self.lock = Lockfile.load(tmp / "assetbuild.lock", journal=tmp / "cache" / "journal.jsonl")
        self.cache = Cache(tmp / "cache")
        self.hasher = FileHasher(self.root, None)

    def planner(self, **kw: Any) -> Planner:
        return Planner(self.lock, self.hasher, self.cache, price=lambda n: 0.5 if n.provider_type != "local" else 0.0,
                       **kw)

    def write(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return sha256_bytes(data)

    def built(self, n: Node, upstream: dict | None = None, **entry: Any) -> LockEntry:
        """As if a build had made ``n``: its outputs on disk and its entry in the lock."""
        d = self.planner().decide(n, upstream or {})
        outputs = tuple(OutputRecord(p, self.write(p, png("red") + p.encode()), 4, 4) for p in n.outputs)
        self.lock.entries[n.id] = LockEntry(d.fingerprint, "local", "local", "t", 0.0, d.inputs, outputs, **entry)
        return self.lock.entries[n.id]

    def reasons(self, n: Node, upstream: dict | None = None, **kw: Any) -> list[Reason]:
        return self.planner(**kw).decide(n, upstream or {}).reasons

    def run(self, nodes: list[Node], *, provider: Any = None, budget: Budget | None = None) -> list[Any]:
        planner = self.planner()
        executor = Executor(root=self.root, planner=planner, lock=self.lock, cache=self.cache, hasher=self.hasher,
                            providers=Routing(_Pool(provider or LocalProvider()), {}), clock=SystemClock(), jobs=1, budget=budget)
        return executor.run(planner.plan(nodes))


class _Pool:
    def __init__(self, provider: Any):
        self.provider = provider

    def get(self, name: str) -> Any:
        return self.provider

    def fallback_of(self, name: str) -> None:
        return None

    def interrupt(self) -> None:
        pass


def _changed(**changes: Any) -> Callable[[Project], list[Reason]]:
    """Built as ``node()``, then the manifest changed it."""

    def case(p: Project) -> list[Reason]:
        p.built(node())
        return p.reasons(node(**changes))

    return case


def _reference_changed(p: Project) -> list[Reason]:
    p.write("brand/logo.png", png("red"))
    n = node(references=(Ref("brand/logo.png", path="brand/logo.png", site=SITE),))
    p.built(n)
    p.write("brand/logo.png", png("blue"))
    return p.reasons(n)


def _references_changed(p: Project) -> list[Reason]:
    p.write("brand/logo.png", png("red"))
    p.write("brand/mark.png", png("blue"))
    p.built(node(references=(Ref("brand/logo.png", path="brand/logo.png", site=SITE),)))
    return p.reasons(node(references=(Ref("brand/mark.png", path="brand/mark.png", site=SITE),)))


def _recipe_changed(p: Project) -> list[Reason]:
    """A lock an assetbuild with another recipe version wrote: the same inputs otherwise."""
    entry = p.built(node())
    p.lock.entries["a"] = replace(entry, fingerprint="0" * 64, inputs={**entry.inputs, "recipe": -1})
    return p.reasons(node())


def _fingerprint_changed(p: Project) -> list[Reason]:
    """The lock's inputs are the node's, its fingerprint is not (the lock was edited)."""
    entry = p.built(node())
    p.lock.entries["a"] = replace(entry, fingerprint="0" * 64)
    return p.reasons(node())


def _upstream_hand_edited(p: Project) -> list[Reason]:
    up, down = node("up"), node("down", references=(Ref("@up", node="up", paths=("out/up.png",)),))
    p.built(up)
    p.write("out/up.png", b"retouched")
    decisions = p.planner().plan([up, down])
    assert decisions[0].action is Action.BLOCKED and decisions[1].action is Action.BLOCKED
    return decisions[1].reasons


def _output_missing(p: Project) -> list[Reason]:
    p.built(node())
    (p.root / "out/a.png").unlink()
    return p.reasons(node())


def _output_modified(p: Project) -> list[Reason]:
    p.built(node())
    p.write("out/a.png", b"retouched")
    return p.reasons(node())


def _output_foreign(p: Project) -> list[Reason]:
    p.write("out/a.png", b"someone else's image")
    return p.reasons(node())


def _output_other_lock(p: Project) -> list[Reason]:
    """The file holds what another lock (the other side of a merge) recorded for it."""
    p.built(node())
    theirs = p.write("out/a.png", b"their image")
    return p.reasons(node(), elsewhere=lambda: {"out/a.png": {theirs}})


def _lfs_pointer(p: Project) -> list[Reason]:
    p.built(node())
    p.write("out/a.png", b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 1\n")
    return p.reasons(node())


def _adopted_inputs_changed(p: Project) -> list[Reason]:
    entry = p.built(node())
    p.lock.entries["a"] = replace(entry, adopted=entry.outputs[0].sha256)
    return p.reasons(node(prompt="a blue fox"))


def _moved(p: Project) -> list[Reason]:
    p.built(node())
    return p.reasons(node(outputs=("img/a.png",)))


def _same_content(p: Project) -> list[Reason]:
    p.built(node("a"))
    return p.reasons(node("b"))


def _in_cache(p: Project) -> list[Reason]:
    entry = p.built(node())
    blob = p.cache.put_blob((p.root / "out/a.png").read_bytes())
    p.cache.put_result(entry.fingerprint, CacheRecord(originals=(blob,), provider="local", model_id="local", built="t"))
    (p.root / "out/a.png").unlink()
    return p.reasons(node())


def _reroll(p: Project) -> list[Reason]:
    entry = p.built(node())
    d = p.planner(reroll=frozenset({"a"})).decide(node(), {})
    assert d.reroll and d.keep == (entry.outputs[0].sha256,)  # made whole by the planner, not patched after
    return d.reasons


def _reroll_resumed(p: Project) -> list[Reason]:
    """A plain build after a kill that left a reroll's paid job saved: the same request, resumed."""
    entry = p.built(node())
    key = reroll_request(entry.fingerprint, (entry.outputs[0].sha256,))[0]
    d = p.planner(resume={"a": {"fingerprint": entry.fingerprint, "key": key}}).decide(node(), {})
    assert d.action is Action.GENERATE and d.reroll and d.keep == (entry.outputs[0].sha256,)
    return d.reasons


def _billed_unusable(p: Project) -> list[Reason]:
    """A job for these inputs was billed and its images never came: held back until --retry-failed."""
    n = node(provider="h", provider_type="modelark")
    fp = p.planner().decide(n, {}).fingerprint
    p.cache.note_billed(fp, {"asset": "a", "request_id": "job-123"})
    assert p.planner(retry_failed=True).decide(n, {}).action is Action.GENERATE
    return p.reasons(n)


def _damaged_cache(p: Project, budget: Budget | None = None) -> Any:
    """A cached result whose image does not decode: the build restores it, finds it damaged
    and generates it again (a hosted asset, priced 0.50)."""
    n = node(provider="h", provider_type="modelark")
    d = p.planner().decide(n, {})
    damaged = p.cache.put_blob(b"half an image")
    p.cache.put_result(d.fingerprint, CacheRecord(originals=(damaged,), provider="h", model_id="m", built="t"))
    assert p.planner().decide(n, {}).action is Action.RESTORE
    return p.run([n], budget=budget)[0]


def _cache_damaged(p: Project) -> list[Reason]:
    result = _damaged_cache(p)
    assert result.status is Outcome.GENERATED
    return result.reasons


def _over_budget(p: Project) -> list[Reason]:
    result = _damaged_cache(p, Budget(limit_usd=0.25))
    assert result.status is Outcome.BLOCKED
    return result.reasons


def _stopped(p: Project) -> list[Reason]:
    class Failing(LocalProvider):
        def generate(self, request: Any, jobs: Any) -> Any:
            if request.asset_id == "a":
                raise ProviderUnavailable("down", provider="local")
            return super().generate(request, jobs)

    results = p.run([node("a"), node("b")], provider=Failing())
    assert [r.status for r in results] == [Outcome.FAILED, Outcome.BLOCKED]
    return results[1].reasons


C = ReasonCode
CASES: dict[ReasonCode, tuple[Callable[[Project], list[Reason]], str]] = {
    C.NEW_ASSET: (lambda p: p.reasons(node()), "new asset"),
    C.FORCED: (lambda p: p.reasons(node(), force=frozenset({"a"})), "forced (--force)"),
    C.REROLL: (_reroll, "reroll (a new generation though nothing changed)"),
    C.REROLL_RESUMED: (_reroll_resumed, "a reroll interrupted after its job was submitted (and billed): "
                                        "its saved job is resumed"),
    C.KIND_CHANGED: (lambda p: (p.built(node("d")), p.reasons(derived("d"), {"up": ("f" * 64,)}))[1],
                     "kind changed (generate -> derive)"),
    C.PROMPT_CHANGED: (_changed(prompt="a blue fox"), "prompt changed"),
    C.MODEL_CHANGED: (_changed(model="seedream-4.5"), "model changed (local -> seedream-4.5)"),
    C.SIZE_CHANGED: (_changed(size="16x16", width=16, height=16), "size changed (8x8 -> 16x16)"),
    C.COUNT_CHANGED: (_changed(count=2, outputs=("out/a-1.png", "out/a-2.png")), "count changed (1 -> 2)"),
    C.CANDIDATES_CHANGED: (_changed(candidates=3), "candidates changed (1 -> 3)"),
    C.BATCH_CHANGED: (_changed(batch="separate"), "batch changed (sequential -> separate)"),
    C.OUTPUT_FORMAT_CHANGED: (_changed(output_format="png"), "output_format changed (the host's default -> png)"),
    C.SEED_CHANGED: (_changed(seed=7), "seed changed"),
    C.WATERMARK_CHANGED: (_changed(watermark=True), "watermark changed"),
    C.PARAMS_CHANGED: (_changed(params={"guidance_scale": 3}), "params changed"),
    C.STEPS_CHANGED: (lambda p: (p.built(derived(), {"up": ("f" * 64,)}),
                                 p.reasons(derived(steps=({"op": "flip"},)), {"up": ("f" * 64,)}))[1], "steps changed"),
    C.REFERENCE_CHANGED: (_reference_changed, "reference brand/logo.png changed"),
    C.REFERENCES_CHANGED: (_references_changed, "references changed"),
    C.RECIPE_CHANGED: (_recipe_changed, "recipe changed"),
    C.FINGERPRINT_CHANGED: (_fingerprint_changed, "fingerprint changed"),
    C.UPSTREAM_CHANGED: (lambda p: p.reasons(derived(), {"up": Unsettled.PENDING}), "upstream up changed"),
    C.UPSTREAM_UNBUILT: (lambda p: p.reasons(derived(), {"up": Unsettled.UNBUILT}), "upstream up not built"),
    C.UPSTREAM_HAND_EDITED: (_upstream_hand_edited, "upstream up not built: its output was modified by hand "
                             "(`assetbuild adopt up` keeps it, `assetbuild build --force up` overwrites it)"),
    C.REFERENCE_MISSING: (lambda p: p.reasons(node(references=(Ref("brand/gone.png", path="brand/gone.png",
                                                                   site=SITE),))),
                          "reference brand/gone.png missing"),
    C.OUTPUT_MISSING: (_output_missing, "output out/a.png missing"),
    C.OUTPUT_MODIFIED: (_output_modified, "output out/a.png modified by hand "
                        "(`assetbuild adopt a` keeps it, `assetbuild build --force a` overwrites it)"),
    C.OUTPUT_FOREIGN: (_output_foreign, "output out/a.png exists but was not written by assetbuild "
                       "(`assetbuild adopt a` keeps it, `assetbuild build --force a` overwrites it)"),
    C.OUTPUT_OTHER_LOCK: (_output_other_lock, "output out/a.png holds the bytes another lock recorded (a merge?): "
                          "run `assetbuild lock resolve` to record it as built (--force overwrites it)"),
    C.LFS_POINTER: (_lfs_pointer, "output out/a.png is a Git LFS pointer file, not the image: run git lfs pull"),
    C.ADOPTED_INPUTS_CHANGED: (_adopted_inputs_changed, "output out/a.png was adopted by hand, and a rebuild would "
                               "discard the hand edit (--force rebuilds it)"),
    C.OUTPUT_PATHS_CHANGED: (_moved, "output paths changed"),
    C.OLD_OUTPUT_PATHS: (_moved, "from the old output paths"),
    C.SAME_CONTENT: (_same_content, "same inputs as a, whose images are on disk (a rename or a merge: nothing to pay)"),
    C.MERGE_BUILT: (lambda p: p.reasons(node(), built_in_git=lambda fp: "MERGE_HEAD"),
                    "a merge is in progress and MERGE_HEAD built these inputs already: run `assetbuild lock resolve` "
                    "(it takes the images from git; nothing to pay), then build"),
    C.IN_CACHE: (_in_cache, "in the cache"),
    C.OFFLINE: (lambda p: p.reasons(node(provider="h", provider_type="modelark"), offline=True),
                "needs generation by h (--offline)"),
    C.MISSING_KEY: (lambda p: p.reasons(node(provider="h", provider_type="modelark"),
                                        missing_key=lambda n: "ARK_API_KEY"),
                    "API key not set: set the environment variable ARK_API_KEY"),
    C.BILLED_UNUSABLE: (_billed_unusable, "a job for these inputs was billed but its images could not be fetched "
                                          "(request id job-123); `assetbuild build --retry-failed` pays for a new one"),
    C.CACHE_DAMAGED: (_cache_damaged, "the cached images are damaged or gone"),
    C.OVER_BUDGET: (_over_budget, "generating it again ($0.50) would exceed the budget (max_cost / --max-cost)"),
    C.STOPPED: (_stopped, "not started: the build stopped after a failed (-k keeps going)"),
}


@pytest.mark.parametrize("code", list(CASES), ids=[c.value for c in CASES])
def test_each_code_is_produced_with_its_text(code: ReasonCode, tmp_path: Path):
    case, text = CASES[code]
    reasons = case(Project(tmp_path))
    found = [r for r in reasons if r.code is code]
    assert found, f"{code.value} not among {[r.code.value for r in reasons]}"
    assert str(found[0]) == text


def test_every_code_has_a_case_and_a_text():
    assert set(CASES) == set(ReasonCode) == set(TEXT)


def test_every_fingerprint_input_has_its_code():
    assert [input_changed(key).value for key in COMPARED_INPUTS] == [f"{key}-changed" for key in COMPARED_INPUTS]


def test_codes_keep_their_serialized_text_and_a_typo_fails_where_it_is_written():
    """The codes are what ``--json`` prints and README lists: a str each, compared and
    hashed as its text; a misspelt code is an error when the reason is made."""
    assert Reason("in-cache") == Reason(ReasonCode.IN_CACHE) and Reason("in-cache").code is ReasonCode.IN_CACHE
    assert ReasonCode.MISSING_KEY == "missing-key" and "missing-key" in {ReasonCode.MISSING_KEY}
    assert f"{ReasonCode.FORCED}" == str(ReasonCode.FORCED) == "forced"
    import json

    assert json.dumps([ReasonCode.OUTPUT_FOREIGN]) == '["output-foreign"]'
    with pytest.raises(ValueError):
        Reason("in-cahce")
