"""Shared fixtures: projects in temp dirs, the CLI driven in-process with seams, and a
provider factory that counts (and can fail) generation calls."""

from __future__ import annotations

import shutil
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assetbuild.api import default_provider_factory
from assetbuild.cli import Seams, cli
from assetbuild.errors import ProviderUnavailable
from tests.fakes.clock import FakeClock

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Calls:
    """Counts every provider.generate call, per asset, and fails the ones told to."""

    by_asset: dict[str, int] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        return sum(self.by_asset.values())

    @property
    def assets(self) -> set[str]:
        return set(self.by_asset)

    def reset(self) -> None:
        self.by_asset.clear()


class CountingProvider:
    def __init__(self, inner: Any, calls: Calls):
        self._inner = inner
        self._calls = calls
        self.name, self.type = inner.name, inner.type

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def generate(self, request: Any, jobs: Any) -> Any:
        with self._calls.lock:
            self._calls.by_asset[request.asset_id] = self._calls.by_asset.get(request.asset_id, 0) + 1
        if request.asset_id in self._calls.fail:
            raise ProviderUnavailable("emulated outage", provider=self.name)
        return self._inner.generate(request, jobs)


@dataclass
class Result:
    exit_code: int
    output: str
    stderr: str


class ProjectDir:
    """A project in a temp dir, with a CLI runner whose provider calls are counted."""

    def __init__(self, root: Path, cache: Path):
        self.root = root
        self.calls = Calls()
        self.env = {"ASSETBUILD_CACHE_DIR": str(cache)}
        self.clock: Any = None  # a FakeClock makes retries and polls instant

    def factory(self, name: str, config: Any, *, env: Any, clock: Any) -> Any:
        return CountingProvider(default_provider_factory(name, config, env=env, clock=clock), self.calls)

    def write(self, rel: str, content: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        return path

    def manifest(self, text: str) -> Path:
        return self.write("assetbuild.toml", text)

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        self.calls.reset()
        runner = CliRunner()
        seams = Seams(env={**self.env, **(env or {})}, provider_factory=self.factory, clock=self.clock)
        res = runner.invoke(cli, ["-C", str(self.root), *args], obj=seams, catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock: sleeps advance it at once, so retries and polls cost no wall time."""
    return FakeClock()


@pytest.fixture
def project(tmp_path: Path) -> ProjectDir:
    root = tmp_path / "proj"
    root.mkdir()
    return ProjectDir(root, tmp_path / "cache")


@pytest.fixture
def brand_kit(tmp_path: Path) -> ProjectDir:
    """A copy of examples/brand-kit, built from nothing."""
    root = tmp_path / "brand-kit"
    shutil.copytree(REPO / "examples" / "brand-kit", root,
                    ignore=shutil.ignore_patterns("assets", "assetbuild.lock", ".assetbuild"))
    return ProjectDir(root, tmp_path / "cache")


def png(width: int = 32, height: int = 32, color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()
