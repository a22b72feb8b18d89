import httpx

from tests.fakes.server import Emulator, Response, make_png


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
