"""Issue 18: many machines, one bill. Leases in the shared remote cache, for real: the lease
operations against a file:// folder and moto's S3 server on 127.0.0.1 (conditional create,
overwrite at an ETag, release), then real `assetbuild build` processes in separate project
folders with separate local caches, sharing one remote and one host emulator (evolink, whose
jobs run for a fixed wall time here): runners started together pay once per asset; a runner
SIGKILLed mid-build leaves leases that the others take over after they expire, resuming its
host jobs; eight runners racing for one asset submit once; ``build --shard K/N``."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from assetbuild.clock import SystemClock
from assetbuild.store.leases import FileBackend, Held, Lease, Leases, LeaseSettings, Refused, read_lease
from assetbuild.store.remote import RemoteSpec, RemoteStore
from tests.conftest import REPO, ProjectDir
from tests.fakes.evolink import EvolinkEmulator
from tests.fakes.server import make_png
from tests.test_remote import FAKE_AWS, S3

KEY = "sk-leases-1"
JOB_S = 0.4  # how long a host job runs (wall time)


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
                "ASSETBUILD_CACHE_REMOTE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class Remote:
    """Where the runners share their cache: a file:// folder or a prefix in moto's bucket."""

    def __init__(self, url: str, endpoint: str | None = None):
        self.url = url
        self.endpoint = endpoint

    def table(self, ttl_s: float) -> str:
        # a long timeout: two cores shared with other work make moto slow, and a remote that
        # times out is turned off for the run (then its builds pay without leases, by design)
        text = f'[cache]\nremote = "{self.url}"\ntimeout_s = 30.0\nlease_ttl_s = {ttl_s}\n'
        return text + (f'endpoint_url = "{self.endpoint}"\n' if self.endpoint else "")

    def store(self) -> RemoteStore:
        return RemoteStore(RemoteSpec(self.url, self.endpoint, 30.0), {**os.environ, **FAKE_AWS})


@pytest.fixture(params=["file", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote]:
    if request.param == "file":
        yield Remote((tmp_path / "shared").as_uri())
        return
    server = S3()
    try:
        yield Remote(f"s3://{server.bucket}/team", server.endpoint)
    finally:
        server.stop()


# -- the lease operations ----------------------------------------------------------------------

def leases_on(remote: Remote, ttl_s: float = 30.0, warnings: list[str] | None = None) -> Leases:
    sink = warnings if warnings is not None else []
    return Leases(remote.store(), LeaseSettings(True, ttl_s), SystemClock(), sink.append)


def test_a_lease_is_held_by_one_runner_and_the_others_see_it_live(remote: Remote) -> None:
    first, second = leases_on(remote), leases_on(remote)
    try:
        held = first._take("f" * 64, "hero")
        assert isinstance(held, Held) and held.inherited is None
        seen = second._take("f" * 64, "hero")
        assert isinstance(seen, Lease) and seen.token == held.token and seen.expires > time.time()
        first.release(held)
        again = second._take("f" * 64, "hero")  # released: the next runner creates it anew
        assert isinstance(again, Held)
        second.release(again)
    finally:
        first.close()
        second.close()


def test_eight_runners_racing_for_one_lease_one_holds_it(remote: Remote) -> None:
    runners = [leases_on(remote) for _ in range(8)]
    got: list[Any] = [None] * 8
    start = threading.Barrier(8)

    def take(i: int) -> None:
        start.wait()
        got[i] = runners[i]._take("a" * 64, "logo")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sum(isinstance(g, Held) for g in got) == 1
        assert all(isinstance(g, (Held, Lease)) for g in got)
    finally:
        for r in runners:
            r.close()


def test_an_expired_lease_is_taken_over_once_with_its_job(remote: Remote) -> None:
    dead, ttl = leases_on(remote, ttl_s=5.0), 5.0
    held = dead._take("e" * 64, "hero")
    assert isinstance(held, Held)
    dead.attach_job(held, "evolink|http://h|" + "e" * 64, "task-unified-1-abc")
    dead.abandon(held)  # expired at once, job kept: what a killed holder's lease is after its TTL
    dead.close()
    takers = [leases_on(remote, ttl) for _ in range(4)]
    got: list[Any] = [None] * 4
    start = threading.Barrier(4)

    def take(i: int) -> None:
        start.wait()
        got[i] = takers[i]._take("e" * 64, "hero")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        winners = [g for g in got if isinstance(g, Held)]
        assert len(winners) == 1
        assert winners[0].inherited == ("evolink|http://h|" + "e" * 64, "task-unified-1-abc")
    finally:
        for t in takers:
            t.close()


def test_a_holder_that_was_taken_over_learns_it_at_its_next_renewal(remote: Remote) -> None:
    warnings: list[str] = []
    slow = leases_on(remote, ttl_s=5.0, warnings=warnings)
    held = slow._take("d" * 64, "hero")
    assert isinstance(held, Held)
    other = leases_on(remote)
    # the slow holder stalls past its TTL: another runner finds the lease expired and takes it
    data, etag = other._backend.read("d" * 64 + ".json")  # type: ignore[misc]
    body = json.loads(data)
    body["expires"] = time.time() - 1
    assert other._backend.replace("d" * 64 + ".json", json.dumps(body).encode(), etag) is not None
    taken = other._take("d" * 64, "hero")
    assert isinstance(taken, Held)
    slow.renew(held)
    assert held.lost and any("taken over" in w for w in warnings)
    slow.release(held)  # a lost lease is not deleted: it is the other runner's now
    assert isinstance(leases_on(remote)._take("d" * 64, "hero"), Lease)
    other.release(taken)
    slow.close()
    other.close()


def test_a_malformed_lease_reads_as_expired_and_a_hostile_job_id_is_ignored(tmp_path: Path) -> None:
    leases = leases_on(Remote((tmp_path / "shared").as_uri()))
    assert not leases._live(read_lease(b"not json", "x"))
    lease = read_lease(json.dumps({"token": "t", "expires": 9e12,
                                   "job": {"key": "k", "id": "../../v1/other"}}).encode(), "x")
    assert lease.job_id is None and lease.job_key is None
    assert not leases._live(lease)  # an expiry beyond any TTL holds no build back
    assert leases._live(read_lease(json.dumps({"token": "t", "expires": time.time() + 60}).encode(), "x"))


def test_a_remote_that_ignores_conditional_writes_turns_leases_off_with_one_warning(tmp_path: Path) -> None:
    class Careless(FileBackend):
        def probe(self) -> None:  # what the S3 probe finds on a store that ignores If-None-Match
            raise Refused("PutObject with If-None-Match: * overwrote an existing key")

    remote = Remote((tmp_path / "shared").as_uri())
    warnings: list[str] = []
    store = remote.store()
    leases = Leases(store, LeaseSettings(True, 30.0), SystemClock(), warnings.append, backend=Careless(store))
    for _ in range(3):
        assert leases.hold("c" * 64, "hero", ready=lambda: None, on_wait=lambda holder: None) is None
    assert len(warnings) == 1 and "does not honour conditional writes" in warnings[0]


# -- real builds, many runners -------------------------------------------------------------------

class TimedEvolink(EvolinkEmulator):
    """evolink whose tasks run for JOB_S of wall time from their first poll, and whose every
    result is a different small PNG (so a restore of another runner's result is checked)."""

    counter = itertools.count(1)

    def __init__(self, **kw: Any):
        super().__init__(api_key=KEY, **kw)
        self._first_poll: dict[str, float] = {}

    def tick(self, job: Any) -> bool:
        with self.state_lock:
            first = self._first_poll.setdefault(job.id, time.monotonic())
        return time.monotonic() - first < JOB_S

    def serve_result(self, data: bytes, ext: str = "png") -> str:
        n = next(self.counter)
        return super().serve_result(make_png(24, 16, (n % 251, n // 251 % 251, 7)), "png")


@pytest.fixture
def host() -> Iterator[TimedEvolink]:
    emu = TimedEvolink().start()
    try:
        yield emu
    finally:
        emu.stop()


def manifest(n: int, host_url: str, remote: Remote, *, ttl_s: float = 30.0, tag: str = "") -> str:
    parts = [f'[project]\nprovider = "h"\n[providers.h]\ntype = "evolink"\nbase_url = "{host_url}"\n'
             f'api_key_env = "LEASE_KEY"\npoll_interval_s = 0.1\nconcurrency = 16\n[defaults]\nsize = "1K"\n',
             remote.table(ttl_s)]
    for i in range(n):
        parts.append(f'[assets.a{i:03d}]\nprompt = "asset {i} {tag}"\n')
        if i % 10 == 9:  # a few chained edits: dependencies across runners
            parts.append(f'references = ["@a{i - 1:03d}"]\n')
    return "".join(parts)


def clone(tmp_path: Path, name: str, text: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "assetbuild.toml").write_text(text, encoding="utf-8")
    return root


def runner(root: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **FAKE_AWS, "LEASE_KEY": KEY, "ASSETBUILD_CACHE_DIR": str(root.parent / f"{root.name}-cache"),
           "AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(REPO)}
    env.pop("ASSETBUILD_CACHE_REMOTE", None)
    return subprocess.Popen([sys.executable, "-m", "assetbuild", "-v", "-C", str(root), "build", "--json", "-j", "16",
                             *args], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 200) -> tuple[dict[str, Any], str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out), err


def check_clean(root: Path) -> None:
    env = {**os.environ, "ASSETBUILD_CACHE_DIR": str(root.parent / "check-cache"), "ASSETBUILD_CACHE_REMOTE": "",
           "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "assetbuild", "-C", str(root), "check"], cwd=REPO, text=True,
                         capture_output=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_runners_started_together_pay_once_per_asset(tmp_path: Path, remote: Remote,
                                                           host: TimedEvolink) -> None:
    n = 100
    text = manifest(n, host.base_url, remote, tag=remote.url[:4])
    roots = [clone(tmp_path, f"r{i}", text) for i in range(3)]
    started = time.monotonic()
    procs = [runner(root) for root in roots]
    results = [finish(p) for p in procs]
    wall = time.monotonic() - started
    summaries = [s for s, _ in results]
    warned = [line for _, err in results for line in err.splitlines() if line.startswith("warning")]
    assert len(host.submits) == n, f"billed {len(host.submits)} jobs for {n} assets; {warned}"
    assert sum(s["generated"] for s in summaries) == n
    assert all(s["generated"] + s["restored"] == n and s["failed"] == 0 for s in summaries)
    assert any("another machine is generating it" in err for _, err in results)
    images = [sorted((r / "assets").iterdir()) for r in roots]
    assert [p.read_bytes() for p in images[0]] == [p.read_bytes() for p in images[1]] == \
        [p.read_bytes() for p in images[2]]
    for root in roots:
        check_clean(root)
    print(f"\n{remote.url.split(':')[0]}: 3 runners, {n} assets: billed {len(host.submits)}; "
          f"generated {[s['generated'] for s in summaries]}, wall {wall:.1f} s")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_eight_runners_racing_for_one_asset_submit_once(tmp_path: Path, remote: Remote, host: TimedEvolink) -> None:
    text = manifest(1, host.base_url, remote, tag="race")
    procs = [runner(clone(tmp_path, f"r{i}", text)) for i in range(8)]
    summaries = [finish(p)[0] for p in procs]
    assert len(host.submits) == 1
    assert sorted(s["generated"] for s in summaries) == [0] * 7 + [1]
    assert all(s["restored"] == 1 for s in summaries if not s["generated"])


def leases_of(store: RemoteStore, pid: int) -> dict[str, str | None]:
    """The leases held by process ``pid`` on the remote: fingerprint -> the job id it names."""
    fs = store._filesystem()
    try:
        names = [p for p in fs.find(store._key("leases")) if str(p).endswith(".json")]
    except FileNotFoundError:
        return {}
    found = {}
    for path in names:
        try:
            body = json.loads(fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            continue  # released meanwhile
        if body.get("holder", {}).get("pid") == pid:
            found[body["fingerprint"]] = (body.get("job") or {}).get("id")
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_runner_killed_mid_build_costs_at_most_its_unsaved_submits(tmp_path: Path, remote: Remote,
                                                                     host: TimedEvolink) -> None:
    n, ttl = 40, 5.0
    text = manifest(n, host.base_url, remote, ttl_s=ttl, tag="kill")
    roots = [clone(tmp_path, f"r{i}", text) for i in range(3)]
    victim = runner(roots[0])
    store = remote.store()
    deadline = time.monotonic() + 60
    # mid-build: the victim holds leases, most of them naming the host job it submitted
    while sum(1 for job in leases_of(store, victim.pid).values() if job) < 8 and time.monotonic() < deadline \
            and victim.poll() is None:
        time.sleep(0.05)
    others = [runner(root) for root in roots[1:]]
    time.sleep(0.3)  # the others have planned and found the victim's leases
    victim.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(10)
    time.sleep(0.3)  # what reached the host before the kill is handled
    submits_at_kill = len(host.submits)
    orphans = leases_of(store, victim.pid)
    assert orphans, "the victim held no lease at the kill: kill earlier"
    resumable = sum(1 for job in orphans.values() if job)

    takeover_s: list[float] = []

    def watch() -> None:  # when every orphaned asset's record is on the remote
        while time.monotonic() - killed_at < 60:
            if all(store.get_record(fp) is not None for fp in orphans):
                takeover_s.append(time.monotonic() - killed_at)
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    summaries = [finish(p)[0] for p in others]
    watcher.join()
    billed = len(host.submits)
    # The others paid for what the victim never submitted, resumed the jobs its leases named,
    # and paid again only where its submit may have reached the host before the job id was
    # named in the lease: a lease it held that names no job.
    unsaved = len(orphans) - resumable
    assert all(s["generated"] + s["restored"] == n and s["failed"] == 0 for s in summaries)
    assert billed <= n + unsaved, f"billed {billed} for {n}; {unsaved} leases without a job at the kill"
    for root in roots[1:]:
        check_clean(root)
    print(f"\n{remote.url.split(':')[0]}: killed with {len(orphans)} leases held ({resumable} naming a job), "
          f"{submits_at_kill} submits at the kill; billed {billed} for {n} assets; every orphan on the remote "
          f"{takeover_s[0] if takeover_s else float('nan'):.1f} s after the kill (lease_ttl_s {ttl:g})")


# -- build --shard K/N -------------------------------------------------------------------------

def lock_ids(root: Path) -> set[str]:
    import tomllib

    return set(tomllib.loads((root / "assetbuild.lock").read_text(encoding="utf-8"))["assets"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_shards_then_a_final_build_pay_once_and_the_final_one_restores_all(tmp_path: Path, remote: Remote,
                                                                               host: TimedEvolink) -> None:
    from assetbuild.api import shard_of

    n = 60
    text = manifest(n, host.base_url, remote, tag="shards")
    roots = [clone(tmp_path, f"shard{k}", text) for k in (1, 2, 3)]
    procs = [runner(root, "--shard", f"{k}/3") for k, root in zip((1, 2, 3), roots)]
    summaries = [finish(p)[0] for p in procs]
    assert len(host.submits) == n, f"billed {len(host.submits)} jobs for {n} assets"
    for k, root, summary in zip((1, 2, 3), roots, summaries):
        share = {f"a{i:03d}" for i in range(n) if shard_of(f"a{i:03d}", 3) == k}
        assert share and share <= lock_ids(root), f"shard {k}'s lock lacks part of its share"
        assert summary["failed"] == summary["blocked"] == 0
    final = clone(tmp_path, "final", text)
    summary, _ = finish(runner(final))
    assert len(host.submits) == n  # 0 calls in the final job
    assert summary["restored"] == n and summary["generated"] == 0
    assert lock_ids(final) == {f"a{i:03d}" for i in range(n)}
    check_clean(final)
    print(f"\n{remote.url.split(':')[0]}: 3 shards + final, {n} assets: billed {len(host.submits)}; "
          f"generated per shard {[s['generated'] for s in summaries]}, restored per shard "
          f"{[s['restored'] for s in summaries]}")


def test_a_bad_shard_or_one_without_a_remote_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = clone(tmp_path, "p", '[assets.a]\nprompt = "a"\nsize = "32x32"\n')
    env = {**os.environ, "ASSETBUILD_CACHE_DIR": str(tmp_path / "c"), "ASSETBUILD_CACHE_REMOTE": "",
           "PYTHONPATH": str(REPO)}
    for shard, says in (("4/3", "give K/N with 1 <= K <= N"), ("x", "give K/N"),
                        ("1/2", "--shard needs a shared remote cache")):
        res = subprocess.run([sys.executable, "-m", "assetbuild", "-C", str(root), "build", "--shard", shard],
                             cwd=REPO, env=env, capture_output=True, text=True)
        assert res.returncode == 2 and says in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr



# -- taking over a dead holder's lease, in one process -----------------------------------------

def dead_holders_lease(project: ProjectDir, remote: Remote, host: TimedEvolink, job_id: str) -> str:
    """Leave on the remote the lease a killed runner leaves: expired, naming host job ``job_id``
    under this provider's job key. Returns the fingerprint."""
    import httpx

    from assetbuild.api import Project

    with Project.load(project.root, env={**os.environ, **project.env, **FAKE_AWS}) as p:
        fp = next(d.fingerprint for d in p.plan().decisions)
    body = {"v": 1, "fingerprint": fp, "asset": "a000", "token": "dead", "expires": time.time() - 1, "ttl_s": 30,
            "holder": {"host": "gone", "pid": 1, "started": "2026-12-06T00:00:00Z"},
            "job": {"key": f"evolink|{host.base_url}|{fp}", "id": job_id}}
    store = remote.store()
    from assetbuild.store.leases import backend_for

    assert backend_for(store).create(f"{fp}.json", json.dumps(body).encode()) is not None
    assert httpx is not None
    return fp


def test_a_runner_taking_over_a_dead_holders_lease_resumes_its_host_job(tmp_path: Path, remote: Remote,
                                                                        host: TimedEvolink) -> None:
    import httpx

    project = ProjectDir(tmp_path / "p", tmp_path / "cache")
    project.manifest(manifest(1, host.base_url, remote, tag="resume"))
    project.env["LEASE_KEY"] = KEY
    project.env.update(FAKE_AWS)
    answer = httpx.post(f"{host.base_url}/v1/images/generations", headers={"authorization": f"Bearer {KEY}"},
                        json={"model": "doubao-seedream-4.0", "prompt": "the dead holder's job", "size": "1:1",
                              "quality": "1K"}).json()
    dead_holders_lease(project, remote, host, answer["id"])
    res = project.run("build", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.output)["generated"] == 1
    assert len(host.submits) == 1  # the dead holder's submit: the job was resumed, not paid again


def test_a_dead_holders_job_the_host_forgot_is_submitted_anew(tmp_path: Path, remote: Remote,
                                                              host: TimedEvolink) -> None:
    project = ProjectDir(tmp_path / "p", tmp_path / "cache")
    project.manifest(manifest(1, host.base_url, remote, tag="forgot"))
    project.env["LEASE_KEY"] = KEY
    project.env.update(FAKE_AWS)
    dead_holders_lease(project, remote, host, "task-unified-0-forgotten")
    res = project.run("build", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.output)["generated"] == 1 and len(host.submits) == 1
