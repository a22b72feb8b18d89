"""The machine-readable and the job-summary forms of what plan, build and check found:
``build --json``'s per-asset lists, ``check --json``, and ``plan --format markdown``. Plain
data and strings; the CLI prints them. Their shapes are documented in README ("assetbuild in
CI") and pinned by tests/data/schemas/*.json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

from ..money import usd
from ..plan.reasons import texts

if TYPE_CHECKING:
    from ..plan.planner import Decision
    from ..plan.routing import MissingKey
    from ..run.executor import NodeResult
    from ..spec.nodes import Node
    from .leftovers import Leftover


# What is read of the API's results (api.Plan, api.BuildReport, api.Stale): the API stands
# above the commands, so they are named by what they hold, never imported from it.

class Planned(Protocol):
    decisions: list[Decision]
    pruned: list[Leftover]
    assume_keys: bool

    @property
    def missing_keys(self) -> list[MissingKey]: ...

    @property
    def estimated_cost(self) -> float: ...

    @property
    def summary(self) -> str: ...  # "2 generate, 3 up-to-date" or "nothing to do"


class Built(Protocol):
    results: list[NodeResult]
    pruned: list[Leftover]
    missing_keys: list[MissingKey]

    def to_json(self) -> dict[str, Any]: ...


class Checked(Protocol):
    asset: str
    reasons: list[str]
    codes: list[str]
    action: str

    @property
    def stale(self) -> bool: ...

BUILD_LISTS = ("generated", "restored", "derived", "failed", "blocked", "pruned")


def build_json(report: Built, nodes: Mapping[str, "Node"]) -> dict[str, Any]:
    """``build --json``: the counts (as before), then ``assets``: per outcome, each asset with
    its files (paths from the project root), its cost where paid, its reasons where blocked
    or failed; and ``missing_keys``: each API key variable that blocked assets."""
    lists: dict[str, list[dict[str, Any]]] = {name: [] for name in BUILD_LISTS}
    for r in report.results:
        status = r.status.value
        files = list(nodes[r.id].outputs) if r.id in nodes else []
        if status == "generated":
            lists["generated"].append({"asset": r.id, "files": files, "cost": round(r.cost_usd, 6),
                                       "provider": r.provider})
        elif status in ("restored", "derived"):
            lists[status].append({"asset": r.id, "files": files})
        elif status == "failed":
            lists["failed"].append({"asset": r.id, "error": r.error or "; ".join(texts(r.reasons))})
        elif status == "blocked":
            lists["blocked"].append({"asset": r.id, "reasons": texts(r.reasons),
                                     "codes": [c.code for c in r.reasons]})
    for pruned in report.pruned:  # an asset no longer in the manifest: the files removed, and kept
        lists["pruned"].append(pruned.to_json())
    return {**report.to_json(), "assets": lists, "missing_keys": [m.to_json() for m in report.missing_keys]}


def check_json(found: Sequence[Checked]) -> dict[str, Any]:
    """``check --json``: each asset checked with its status (``up-to-date`` or ``stale``), the
    plan's action, its reasons and their codes; then a summary. The lock's own problems come
    as items too (``asset`` is the lock's file name)."""
    items = [{"asset": s.asset, "status": "stale" if s.stale else "up-to-date", "action": s.action,
              "reasons": list(s.reasons), "codes": list(s.codes)} for s in found]
    stale = sum(1 for s in found if s.stale)
    return {"assets": items, "summary": {"checked": len(items), "up_to_date": len(items) - stale,
                                         "stale": stale, "ok": stale == 0}}


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|") or " "


def _prompt_changes(decisions: Sequence["Decision"]) -> list[str]:
    """Each changed prompt as a word diff (git's ``[-old-]{+new+}`` marks) in a code span, in
    a folded block under the table."""
    from ..plan.reasons import prompt_change
    from ..plan.wordiff import inline, shorten, word_diff

    items = []
    for d in decisions:
        change = prompt_change(d.reasons, d.inputs)
        if change is not None:
            text = inline(shorten(word_diff(*change))).replace("`", "'").replace("\n", " ")
            items.append(f"- `{_cell(d.id)}`: `{text}`")
    if not items:
        return []
    return ["<details><summary>Prompt changes</summary>", "", *items, "", "</details>", ""]


def plan_markdown(plan: Planned, title: str = "assetbuild plan") -> str:
    """``plan --format markdown``: for a GitHub job summary. A table of every asset that is
    not up to date (asset, action, reasons, cost), then the total."""
    rows = [d for d in plan.decisions if d.action.value != "up-to-date"]
    pruned = list(plan.pruned)
    lines = [f"### {title}", ""]
    if plan.assume_keys:
        lines += ["_Planned as if every API key were set (`--assume-keys`)._", ""]
    for missing in plan.missing_keys:
        lines += [f"> **Warning:** `{missing.variable}` is not set: {len(missing.assets)} asset(s) of "
                  f"{', '.join(missing.providers)} are blocked.", ""]
    if rows or pruned:
        lines += ["| asset | action | reasons | cost |", "|---|---|---|---:|"]
        for d in rows:
            cost = usd(d.cost_usd) if d.cost_usd else ""
            lines.append(f"| `{_cell(d.id)}` | {d.action.value} | {_cell('; '.join(map(str, d.reasons)))} | "
                         f"{cost or ' '} |")
        for left in pruned:
            why = ["no longer in the manifest"] + [f"removes {f}" for f in left.files] + [f"keeps {k}" for k in left.kept]
            lines.append(f"| `{_cell(left.asset)}` | prune | {_cell('; '.join(why))} |   |")
        lines.append("")
        lines += _prompt_changes(rows)
    lines.append(f"**Estimated cost: {usd(plan.estimated_cost)}** ({plan.summary})")
    return "\n".join(lines) + "\n"
