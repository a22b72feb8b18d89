"""Synthetic assetbuild projects for the benchmarks: N concrete assets (nodes) on the
``local`` provider at a small size (64x64 by default), shaped like the measurements of
issue 7:

* chains: of the plain assets, every tenth is a chain root and each of the other nine
  references the one before it (``references = ["@c000123"]``), so a root's change ripples
  down nine dependents;
* matrix assets: about one node in ten is a variant of a 2x2 matrix asset
  (``matrix = { color = [...], bg = [...] }``) that references a chain root and a reference
  file;
* reference files: small PNGs under ``refs/`` in the project (one per 100 nodes, at least
  4), referenced by every chain root and every matrix asset.

Derived assets (``from`` / ``steps``, issue 8) do not exist yet, so a synthetic project has
none; add them here when they land.

Importable::

    from synth import write_project
    manifest_text = write_project(Path("/tmp/p"), assets=1000)   # writes refs/ and assetbuild.toml

or runnable::

    python benchmarks/synth.py --assets 10000 --out /tmp/p10k [--size 64x64]
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import zlib
import struct
from pathlib import Path

MATRIX = {"color": ["red", "navy"], "bg": ["white", "concrete"]}
VARIANTS = len(MATRIX["color"]) * len(MATRIX["bg"])
CHAIN = 10  # every tenth plain asset is a chain root


def png(width: int, height: int, seed: int) -> bytes:
    """A small valid RGB PNG (a flat colour picked by ``seed``), written without Pillow so
    that generating a project costs nothing measurable."""
    color = bytes(((seed * 53) % 256, (seed * 97) % 256, (seed * 191) % 256))
    raw = b"".join(b"\0" + color * width for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def layout(assets: int) -> tuple[int, int]:
    """(plain chain assets, matrix assets) for ``assets`` nodes: about 10% matrix variants."""
    matrices = assets // 10 // VARIANTS
    return assets - matrices * VARIANTS, matrices


def reference_count(assets: int) -> int:
    return max(4, assets // 100)


def manifest_text(assets: int, size: str = "64x64", provider: str = "local") -> str:
    """The manifest of an ``assets``-node project (reference files as ``reference_files`` names)."""
    plain, matrices = layout(assets)
    refs = reference_count(assets)
    out = io.StringIO()
    out.write(f'[project]\nname = "synth-{assets}"\nprovider = "{provider}"\n\n[defaults]\nsize = "{size}"\n\n')
    for i in range(plain):
        out.write(f'[assets.c{i:06d}]\nprompt = "chained asset {i}, a fox in scene {i % 97}"\n')
        if i % CHAIN:
            out.write(f'references = ["@c{i - 1:06d}"]\n')
        else:
            out.write(f'references = ["refs/ref-{(i // CHAIN) % refs:04d}.png"]\n')
        out.write("\n")
    colors = ", ".join(f'"{c}"' for c in MATRIX["color"])
    bgs = ", ".join(f'"{b}"' for b in MATRIX["bg"])
    for k in range(matrices):
        root = (k * CHAIN) % max(plain, 1) // CHAIN * CHAIN
        out.write(f'[assets.m{k:05d}]\nprompt = "product shot {k} in {{color}} on a {{bg}} floor"\n'
                  f'references = ["@c{root:06d}", "refs/ref-{k % refs:04d}.png"]\n'
                  f"matrix = {{ color = [{colors}], bg = [{bgs}] }}\n\n")
    return out.getvalue()


def ark_manifest_text(assets: int, base_url: str, *, size: str = "1K", model: str = "seedream-4.0",
                      concurrency: int = 4, requests_per_minute: int | None = None,
                      api_key_env: str = "ARK_API_KEY") -> str:
    """A manifest of ``assets`` independent text-to-image assets on a ModelArk provider at
    ``base_url`` (an emulator): what the throughput and memory benchmarks build."""
    out = io.StringIO()
    out.write(f'[project]\nname = "synth-ark-{assets}"\nprovider = "ark"\nmodel = "{model}"\n\n'
              f'[providers.ark]\ntype = "modelark"\nbase_url = "{base_url}"\napi_key_env = "{api_key_env}"\n'
              f"concurrency = {concurrency}\n")
    if requests_per_minute is not None:
        out.write(f"requests_per_minute = {requests_per_minute}\n")
    out.write(f'\n[defaults]\nsize = "{size}"\n\n')
    for i in range(assets):
        out.write(f'[assets.h{i:05d}]\nprompt = "hosted asset {i}, a fox on a ridge"\n\n')
    return out.getvalue()


def write_references(root: Path, assets: int, side_px: int = 64) -> list[Path]:
    folder = root / "refs"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(reference_count(assets)):
        path = folder / f"ref-{k:04d}.png"
        path.write_bytes(png(side_px, side_px, k))
        paths.append(path)
    return paths


def write_project(root: Path, assets: int, size: str = "64x64", *, provider: str = "local",
                  manifest: bool = True) -> str:
    """Write the reference files (and, unless ``manifest=False``, ``assetbuild.toml``) under
    ``root``; return the manifest text."""
    root.mkdir(parents=True, exist_ok=True)
    write_references(root, assets)
    text = manifest_text(assets, size, provider)
    if manifest:
        (root / "assetbuild.toml").write_text(text, encoding="utf-8")
    return text


def change_root_prompt(text: str, root_index: int = 0) -> str:
    """``text`` with one chain root's prompt changed (its nine dependents become stale too)."""
    pattern = rf'(\[assets\.c{root_index:06d}\]\nprompt = "[^"]*)"'
    changed, n = re.subn(pattern, r'\1, now at dawn"', text, count=1)
    if n != 1:
        raise ValueError(f"no chain root c{root_index:06d} in the manifest")
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=1000, help="concrete assets (nodes), default 1000")
    parser.add_argument("--out", type=Path, required=True, help="the project folder to write")
    parser.add_argument("--size", default="64x64", help="every asset's size (default 64x64)")
    args = parser.parse_args(argv)
    write_project(args.out, args.assets, args.size)
    plain, matrices = layout(args.assets)
    print(f"wrote {args.out / 'assetbuild.toml'}: {plain} chained assets ({plain // CHAIN} chains), "
          f"{matrices} matrix assets x {VARIANTS} variants, {reference_count(args.assets)} reference files",
          file=sys.stderr)


if __name__ == "__main__":
    main()
