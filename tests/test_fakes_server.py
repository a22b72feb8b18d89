import httpx

from tests.fakes.server import Emulator, HostEmulator, JobFault, Response, make_png


def test_emulator_routes_faults_and_results():
    emu = Emulator()
    emu.route("ping", "GET", r"/ping/(?P<n>\d+)")(lambda r: Response(200, {"n": int(r.match["n"])}))
    with emu:
        emu.fail_next("ping", status=429, headers={"Retry-After": "3"})
        first = httpx.get(f"{emu.url}/ping/1")
        assert first.status_code == 429 and first.headers["retry-after"] == "3"
        assert httpx.get(f"{emu.url}/ping/2").json() == {"n": 2}
        url = emu.serve_result(make_png(4, 4))
        assert httpx.get(url).content.startswith(b"\x89PNG")
        emu.expire_results()
        assert httpx.get(url).status_code == 403
    assert [r.route for r in emu.requests] == ["ping", "ping", "result", "result"]


def test_host_emulator_guards_its_api_and_queues_job_faults():
    emu = HostEmulator(api_key="k", polls_until_done=1)
    emu.api_route("ping", "GET", r"/ping")(lambda r: Response(200, {"ok": True}))
    with emu:
        assert httpx.get(f"{emu.base_url}/ping").status_code == 401
        assert httpx.get(f"{emu.base_url}/ping", headers={"Authorization": "Bearer k"}).json() == {"ok": True}
        url = emu.store_file(b"ref")
        assert httpx.get(url).content == b"ref"  # uploaded files are served without the key
    emu.fail_next_job("FAILED", "boom", after=1)
    assert emu.take_job_fault() is None
    assert emu.take_job_fault() == JobFault("FAILED", "boom")
    emu.batch_limit = 3
    emu.short_next_job(1)
    assert (emu.images_made(5), emu.images_made(5)) == (1, 3)
    job = type("Job", (), {"polls": 0})()  # anything with ``polls`` is a job to tick
    assert (emu.tick(job), emu.tick(job)) == (True, False)
