"""A saved plan (``plan -o FILE``) and building exactly it (``build --plan FILE``), as
``terraform plan -out`` / ``terraform apply PLANFILE`` do: what a pull request approved is what
main pays for.

The file holds the decisions (asset, action, fingerprint, cost, reasons), the estimated cost,
the settings they were planned under (targets, --force, --offline, --provider, --reroll,
--assume-keys) and every hash they rest on: the manifest's bytes, the lock's bytes, and each
file the plan read (the selected assets' outputs, their reference files, the files a prune
would remove). ``build --plan`` hashes those again and plans again under the same settings;
anything that differs refuses the build before anything is sent (one line, exit 2).

One difference is let through: an asset planned as ``generate`` (or ``derive``) that the
cache can now ``restore`` (same fingerprint: the same image, free), and what follows from it
(a dependent whose fingerprint waited on that upstream). Nothing else, and never more cost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..errors import UsageError
from ..store.files import write_atomic
from ..store.hashing import sha256_bytes

if TYPE_CHECKING:
    from ..plan.planner import Decision
    from .leftovers import Leftover

FORMAT = "assetbuild-plan"
VERSION = 1
SETTINGS = ("targets", "force", "offline", "provider", "reroll", "assume_keys")


class Planned(Protocol):  # api.Plan, named by what is read of it (the API stands above the commands)
    decisions: list[Decision]
    pruned: list[Leftover]
    assume_keys: bool

    @property
    def estimated_cost(self) -> float: ...


class Planning(Protocol):  # api.Project, as far as a saved plan needs it
    root: Path
    manifest_path: Path
    lock: Any
    hasher: Any


def _file_sha(path: Path) -> str | None:
    try:
        return sha256_bytes(path.read_bytes())
    except FileNotFoundError:
        return None


def _files(project: Planning, plan: Planned) -> dict[str, str | None]:
    """Every file the plan's decisions rest on, by its path under the project: outputs (up to
    date, missing or edited by hand), reference files, and what a prune would remove."""
    paths: list[str] = []
    for d in plan.decisions:
        paths += list(d.node.outputs)
        paths += [r.path for r in d.references if r.path]
    for left in plan.pruned:
        paths += list(left.files)
    return {path: project.hasher.hash(path) for path in sorted(set(paths))}


def record(project: Planning, plan: Planned, settings: dict[str, Any]) -> dict[str, Any]:
    """The saved form of ``plan``, made in ``project`` under ``settings`` (see SETTINGS)."""
    from .. import __version__
    from ..plan.reasons import texts

    return {
        "format": FORMAT,
        "version": VERSION,
        "made_by": f"assetbuild {__version__}",
        "settings": {key: settings.get(key) for key in SETTINGS},
        "manifest": {"name": project.manifest_path.name, "sha256": _file_sha(project.manifest_path)},
        "lock": {"name": project.lock.path.name, "sha256": _file_sha(project.lock.path)},
        "files": _files(project, plan),
        "actions": [{"asset": d.id, "action": d.action.value, "fingerprint": d.fingerprint,
                     "cost": round(d.cost_usd, 6), "reasons": texts(d.reasons), "codes": [r.code for r in d.reasons]}
                    for d in plan.decisions],
        "pruned": [left.asset for left in plan.pruned],
        "estimated_cost": plan.estimated_cost,
    }


def save(path: Path, saved: dict[str, Any]) -> None:
    write_atomic(path, (json.dumps(saved, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read(path: Path) -> dict[str, Any]:
    """A saved plan; one UsageError line if ``path`` is not one this assetbuild can build."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--plan {path}: no such file; make it with `assetbuild plan -o {path}`") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--plan {path}: not a saved plan ({type(exc).__name__}); "
                         f"make it with `assetbuild plan -o {path}`") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"--plan {path}: not a saved plan; make it with `assetbuild plan -o {path}`")
    if data.get("version") != VERSION:
        raise UsageError(f"--plan {path}: plan format version {data.get('version')!r} is not {VERSION}; "
                         "plan again with this assetbuild")
    try:
        _shape(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"--plan {path}: damaged ({exc}); plan again") from exc
    return data


def _shape(data: dict[str, Any]) -> None:
    """KeyError/TypeError/ValueError if ``data`` lacks what ``verify`` reads."""
    settings = data["settings"]
    if not isinstance(settings, dict) or not isinstance(data["files"], dict):
        raise TypeError("settings and files must be tables")
    for key in ("targets", "reroll"):
        if not isinstance(settings.get(key) or [], list):
            raise TypeError(f"settings.{key} must be a list")
    for action in data["actions"]:
        if not isinstance(action["asset"], str) or not isinstance(action["action"], str):
            raise TypeError("each action needs an asset and an action")
        float(action["cost"])
    float(data["estimated_cost"])
    str(data["manifest"]["sha256"]), data["lock"]["sha256"]


def settings_of(saved: dict[str, Any]) -> dict[str, Any]:
    s = saved["settings"]
    return {"targets": tuple(s.get("targets") or ()), "force": bool(s.get("force")),
            "offline": bool(s.get("offline")), "provider": s.get("provider"),
            "reroll": tuple(s.get("reroll") or ()), "retry_failed": bool(s.get("retry_failed"))}


def verify(project: Planning, saved: dict[str, Any], replan: Callable[[], Planned], name: str) -> Planned:
    """The plan to build: ``replan()`` (made now, under the saved settings), once every hash
    the saved plan rests on and every decision in it are found unchanged; else a UsageError
    naming the first difference (nothing has been sent)."""

    def refuse(what: str) -> UsageError:
        return UsageError(f"--plan {name}: {what} since the plan was made; review and save a new plan "
                          f"(`assetbuild plan -o {name}`); nothing was sent")

    manifest, lock = saved["manifest"], saved["lock"]
    if manifest.get("name") != project.manifest_path.name:
        raise UsageError(f"--plan {name}: the plan is of {manifest.get('name')}, not {project.manifest_path.name} "
                         f"(pass -f {manifest.get('name')}); nothing was sent")
    if _file_sha(project.manifest_path) != manifest["sha256"]:
        raise refuse(f"{project.manifest_path.name} changed")
    if _file_sha(project.lock.path) != lock["sha256"]:
        raise refuse(f"{project.lock.path.name} changed")
    for path, sha in saved["files"].items():
        now = project.hasher.hash(path)
        if now != sha:
            raise refuse(f"{path} {'appeared' if sha is None else 'is gone' if now is None else 'changed'}")
    plan = replan()
    planned = [(a["asset"], a["action"], a.get("fingerprint"), float(a["cost"])) for a in saved["actions"]]
    now_ids = [d.id for d in plan.decisions]
    if now_ids != [p[0] for p in planned]:
        extra = sorted(set(now_ids) ^ {p[0] for p in planned})
        raise refuse(f"the assets to build changed ({', '.join(extra[:5]) or 'their order'})")
    for (asset, action, fp, cost), d in zip(planned, plan.decisions):
        # None: not known when planned, as its upstream was to be made anew; the upstream
        # decisions (checked before it, in build order) decide it now
        if fp is not None and d.fingerprint != fp:
            raise refuse(f"{asset}'s inputs changed")
        # the same images at less cost: restored from the cache, or already there
        cheaper = action in ("generate", "derive", "restore") and d.action.value in ("restore", "up-to-date")
        if d.action.value != action and not cheaper:
            why = "; ".join(str(r) for r in d.reasons)
            raise refuse(f"{asset} was planned as {action} and is now {d.action.value}{f' ({why})' if why else ''}")
        if d.cost_usd > cost + 1e-9:
            raise refuse(f"{asset}'s cost rose from ${cost:.2f} to ${d.cost_usd:.2f}")
    if sorted(left.asset for left in plan.pruned) != sorted(saved.get("pruned") or []):
        raise refuse("the assets to prune changed")
    return plan
