"""The curation funnel as a reader sees it: the steps of ``curation_report.json`` in two branches.

Curation's steps are shared by both outputs up to the selection, then split into the SFT branch
(D_SFT) and the pair branch (D_Pref). The curation table, the summary and the model cards read
the funnel through :func:`funnel` so that every surface counts drops the same way.
"""

from __future__ import annotations

import math


def _count(value) -> int | None:
    """An integer count, or None for null / NaN / missing."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return int(value) if math.isfinite(value) else None


#: The funnel's branches: steps shared by both outputs, then the SFT branch (D_SFT) and the pair
#: branch (D_Pref), recognised by the step name's suffix (``select_sft``, ``decontaminate_pref``).
BRANCHES = (("shared", "shared"), ("sft", "SFT branch"), ("pref", "pair branch"))


def branch_of(step: str) -> str:
    """``sft`` / ``pref`` for a step of one branch (name suffix), else ``shared``."""
    for key in ("sft", "pref"):
        if str(step).endswith("_" + key):
            return key
    return "shared"


def funnel(report: dict | None) -> list[dict]:
    """The curation steps in branch order (shared, SFT, pairs), each ``{"branch", "step", "kept",
    "dropped", "reasons", "source"}`` with integer counts; ``dropped`` is measured from the step
    before in the same branch (the last shared step for a branch's first step). The one reading
    of the funnel: the curation table, the summary and the model cards use it."""
    steps = [st for st in (report or {}).get("steps") or [] if isinstance(st, dict)]
    out, shared_last = [], None
    for key, _label in BRANCHES:
        previous = shared_last if key != "shared" else None
        for st in (x for x in steps if branch_of(x.get("step")) == key):
            kept = _count(st.get("kept"))
            dropped = previous - kept if previous is not None and kept is not None else None
            out.append({"branch": key, "step": str(st.get("step")), "kept": kept, "dropped": dropped,
                        "reasons": st.get("reasons"), "source": st})  # fmt: skip
            if kept is not None:
                previous = kept
        if key == "shared":
            shared_last = previous
    return out


def funnel_text(report: dict | None) -> list[str]:
    """One line per branch: ``shared: corpus 3,000 → ... ; SFT branch: ...`` (integers)."""
    steps = funnel(report)
    lines = []
    for key, label in BRANCHES:
        chain = [f"{st['step']} {st['kept']:,}" for st in steps if st["branch"] == key and st["kept"] is not None]
        if chain:
            lines.append(f"{label}: " + " → ".join(chain))
    return lines
