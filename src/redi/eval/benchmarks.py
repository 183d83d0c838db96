"""Evaluation benchmarks: JSON lists of ``{"problem", "answer", ...}``.

Gold normalisation (``answer`` -> ``golds``, a tuple of acceptable alternatives):

* a string stays one alternative; a float that is an integer becomes ``"142"`` (AMC stores
  ``142.0``), other numbers their ``repr``;
* a list (Minerva, OlympiadBench) gives one alternative per element: **all** elements are
  acceptable answers and a response is correct when it matches **any** of them (Minerva's
  multi-element lists are re-formattings of one answer, e.g. ``["0.01", "0.02"]`` or
  ``["-\\frac{1}{3}", "-1/3"]``; OlympiadBench lists always hold one element, multi-part answers
  being comma-joined inside it);
* every alternative goes through :func:`redi.verify.normalize_gold`: surrounding whitespace,
  unescaped ``$`` math delimiters (``"$69$,$84$"`` -> ``"69,84"``; ``\\$18.90`` keeps its
  escaped dollar) and a trailing full stop are removed; duplicates are dropped, order kept.
  The result is the bare expression: :func:`redi.verify.verify_many` wraps it in
  ``\\boxed{}`` before parsing, so a gold is parsed like the answer it is compared with.

Problem ids are the design's ``problem_id``: sha1 of the whitespace-normalised problem text, 16
hex characters (stable across runs, machines and file re-orderings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from redi.ids import problem_id


@dataclass(frozen=True)
class Problem:
    problem_id: str
    index: int  # position in the benchmark file
    problem: str
    golds: tuple[str, ...]  # acceptable gold answers, bare expressions (see module doc)

    @property
    def gold(self) -> str:
        """The first (display) gold."""
        return self.golds[0]


def _scalar(value) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def clean_gold(text: str) -> str:
    """One gold alternative as a bare expression: :func:`redi.verify.normalize_gold` (the one
    home of gold normalisation, shared with corpus labelling; an escaped ``\\$`` survives)."""
    from redi.verify import normalize_gold

    return normalize_gold(text)


def normalise_answer(answer) -> tuple[str, ...]:
    """Gold answer (str, number or list of alternatives) -> tuple of bare gold strings."""
    raw = list(answer) if isinstance(answer, (list, tuple)) else [answer]
    golds = [clean_gold(_scalar(a)) for a in raw if a is not None]
    golds = [g for g in dict.fromkeys(golds) if g]
    if not golds:
        raise ValueError(f"empty gold answer: {answer!r}")
    return tuple(golds)


#: The two halves of a benchmark under ``evaluation.held_out_selection``.
SPLIT_PARTS = ("selection", "report")


def split_half(problems: list[Problem], part: str) -> list[Problem]:
    """One half of a benchmark, for selecting checkpoints on one half and reporting on the other.

    The problems are ranked by the SHA-256 of their id (a hash of the problem text, so the split
    does not depend on the file's order and a problem keeps its half when others are added);
    ``"selection"`` is the first ``ceil(n / 2)`` of that ranking, ``"report"`` the rest, both
    returned in file order. Disjoint, and together the whole benchmark.

    Raises:
        ValueError: ``part`` not in :data:`SPLIT_PARTS`.
    """
    import hashlib

    if part not in SPLIT_PARTS:
        raise ValueError(f"split part must be one of {SPLIT_PARTS}, got {part!r}")
    ranked = sorted(range(len(problems)), key=lambda i: hashlib.sha256(problems[i].problem_id.encode()).hexdigest())
    first = set(ranked[: (len(problems) + 1) // 2])
    return [p for i, p in enumerate(problems) if (i in first) == (part == "selection")]


def load_benchmark(path: str | Path, limit: int | None = None) -> list[Problem]:
    """Load a benchmark file; ``limit`` keeps the first ``limit`` problems (file order)."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of {{problem, answer}}")
    if limit is not None:
        rows = rows[: int(limit)]
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if "problem" not in row or "answer" not in row:
            raise ValueError(f"{path}: row {i} lacks 'problem' or 'answer'")
        pid = problem_id(row["problem"])
        if pid in seen:  # identical problem text twice: keep both, ids stay unique
            seen[pid] += 1
            pid = f"{pid}-{seen[pid]}"
        else:
            seen[pid] = 0
        problems.append(Problem(pid, i, row["problem"], normalise_answer(row["answer"])))
    return problems


def benchmark_paths(benchmarks: Mapping[str, str | Mapping]) -> dict[str, str]:
    """``{name: file}`` of the config's ``evaluation.benchmarks``, whose entries are a file
    (``math500: data/benchmarks/math.json``) or ``{path, display}``.

    Raises:
        ValueError: an entry that is neither, naming the benchmark.
    """
    return {name: _entry(name, spec)["path"] for name, spec in benchmarks.items()}


def display_name(config: Mapping, name: str) -> str:
    """The name tables and figures show for benchmark ``name``: its ``display`` in the workflow
    config's ``evaluation.benchmarks`` (``math500: {path: ..., display: MATH-500}``), else the
    name itself (a plain ``name: file`` entry, or a benchmark the config does not list)."""
    spec = (config.get("evaluation") or {}).get("benchmarks", {}).get(name)
    return (_entry(name, spec).get("display") if spec is not None else None) or name


def _entry(name: str, spec) -> dict:
    if isinstance(spec, (str, Path)):
        return {"path": str(spec)}
    if isinstance(spec, Mapping) and isinstance(spec.get("path"), (str, Path)) and set(spec) <= {"path", "display"}:
        return {"path": str(spec["path"]), "display": spec.get("display")}
    raise ValueError(f"evaluation.benchmarks.{name}: expected a file or {{path, display}}, got {spec!r}")


def gold_response(gold: str) -> str:
    """The gold answer written as a model response in the Open-R1 format."""
    return (
        "<think>\nok\n</think>\n\n"
        f"Therefore, the final answer is: $\\boxed{{{gold}}}$. I hope it is correct"
    )
