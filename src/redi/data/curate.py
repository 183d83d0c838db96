"""Curation of the verified teacher corpus into D_SFT and D_Pref (the paper's rules by default).

Steps, in order (each counted in the report; every dropped row gets a reject line):

1. ``valid_only``: keep ``problem_is_valid.strip().lower() == "yes"`` (the paper). A null value
   in a corpus that has the column (Raw) is dropped (``problem_is_valid null``), as the paper's
   ``.strip()`` rule drops it; rows of corpora without the column (220k-flat / MV-only) are kept
   when ``keep_unknown_validity`` (default) and counted separately.
2. ``exclude_sources``: drop rows whose ``source`` is listed (default ``["cn_k12"]``).
3. ``label_lists``: drop rows that lack a label list ``label_rule`` reads (see
   :data:`RULE_LISTS`), or whose list does not match the number of generations; the reason
   names the rule, the list and its corpus field (``label_rule mv needs label_mv
   (correctness_math_verify): null``). Lists the rule does not read are never required: a 220k
   row with ``correctness_llama = null`` is kept under ``mv``.
4. ``shuffle``: order rows as ``datasets.Dataset.shuffle(seed)`` orders the *original* corpus
   (``numpy.random.default_rng(seed).permutation(n_corpus_rows)``); ``row_index`` is kept.
5. ``select`` (:func:`choose_pair`): a generation is positive when ``label_rule`` holds: ``llama_and_mv`` (default:
   Llama judge AND corpus Math-Verify), ``llama_or_mv``, ``mv``, ``recomputed`` (our bounded
   Math-Verify label). A truncated generation (``is_reasoning_complete`` false or
   ``finish_reasons`` "length", 220k) is never positive; it may be the rejected trace only when
   ``truncated_as_rejected`` (default false: a cut-off answer teaches nothing about a wrong one).
   D_SFT: first positive generation of every row that has one. D_Pref: first positive =
   chosen, first non-positive (allowed) generation = rejected, for rows that have both. The
   ``expected`` numbers (paper: 77,629 / 53,175) are compared with the counts at this step.
   ``disputed`` (:func:`disputed`): pairs whose rejected trace a second verifier (our
   re-verification) calls correct, and SFT rows whose trace it calls wrong, are counted; dropped
   only with ``drop_disputed`` (default off: the paper).
   With ``pairs: all`` a row gives every chosen x rejected combination (:func:`pair_indices`,
   at most ``max_pairs_per_problem``); from here on the funnel counts pairs, each pair's traces
   pass the length filter on their own, and the report adds pairs per problem
   (:func:`pair_counts`).
6. ``length_filter`` (D_Pref; D_SFT too if ``length_filter_sft``): prompt tokens = the
   generation prompt's ids with the student's tokenizer and chat template; response tokens = the
   response as trained (content + end-of-turn token, :func:`redi.chat_template.response_lengths`),
   the unit training's ``max_response_length`` cuts in. Rows whose problem or selected traces
   spell a control token (``<|im_end|>``, ``<|eot_id|>``...) are counted in the step's
   ``control_token_texts`` and kept: they are encoded as text.
7. ``decontaminate``: drop rows whose problem shares a normalised (lower-cased,
   whitespace-split, as in Open-R1's ``scripts/decontaminate.py``) word n-gram with any
   benchmark problem. Problems shorter than n words have no n-grams and are never dropped.

Configuration: :class:`redi.data.config.CurationConfig`; the report (JSON + markdown) is assembled
in :mod:`redi.data.curate_report`. Each step below is a function that takes rows and returns the
kept rows and a :class:`Step` (its reasons ``Counter`` and one reject line per dropped row); the
:class:`Funnel` records the steps in order and writes the reject lines.

An empty D_SFT or D_Pref stops curation (``ValueError``) naming the step that removed the last
row, with the count after every step; the report is written first, the data files are not, so
no training job starts on an empty set.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from redi.data.config import DISPUTE_VERIFIER, RULE_LISTS, CurationConfig
from redi.data.curate_report import build_report, empty_message, render_markdown, source_counts
from redi.data.io import JsonlWriter, iter_parquet_batches, read_kv_meta
from redi.data.normalize import LABEL_FIELDS
from redi.data.schemas import META_NORMALIZE, META_VERIFY
from redi.files import write_json_atomic, write_text_atomic
from redi.prompts import OPENR1_INSTRUCTION, assistant_messages, conversation_messages, user_messages

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- rules


def is_valid(value) -> bool | None:
    """``problem_is_valid`` rule; None when the corpus has no validity information."""
    if value is None:
        return None
    return str(value).strip().lower() == "yes"


def positives(row: dict, rule: str) -> list[bool]:
    if rule == "llama_and_mv":
        return [bool(a and b) for a, b in zip(row["label_llama"], row["label_mv"])]
    if rule == "llama_or_mv":
        return [bool(a or b) for a, b in zip(row["label_llama"], row["label_mv"])]
    if rule == "mv":
        return [bool(x) for x in row["label_mv"]]
    return [bool(x) for x in row["label_recomputed"]]


def corpus_field(col: str, schema: str | None) -> str:
    """The corpus field a canonical label list comes from in ``schema`` (see LABEL_FIELDS)."""
    if col == "label_recomputed":
        return "verify stage"
    return LABEL_FIELDS.get(schema or "", {}).get(col, f"absent from the {schema} layout")


def label_problem(row: dict, rule: str, n_generations: int) -> tuple[str, str] | None:
    """(reason, detail) when a label list the rule reads cannot be used, else None. The reason
    names the rule, the list and its corpus field; lists the rule does not read are ignored."""
    for col in RULE_LISTS[rule]:
        labels = row.get(col)
        what = f"label_rule {rule} needs {col} ({corpus_field(col, row.get('schema'))})"
        if labels is None:
            return f"{what}: null", f"{col} is null"
        if len(labels) != n_generations:
            return (
                f"{what}: length mismatch",
                f"{col} has {len(labels)} labels for {n_generations} generations",
            )
    return None


def truncated(row: dict, n_generations: int) -> list[bool]:
    """Per generation: was it cut off (``is_reasoning_complete`` false or ``finish_reasons``
    "length", OpenR1-Math-220k)? All false for corpora without these fields."""
    complete = row.get("is_reasoning_complete") or [None] * n_generations
    finish = row.get("finish_reasons") or [None] * n_generations
    return [c is False or f == "length" for c, f in zip(complete, finish)]


def choose_pair(pos: list[bool], cut: list[bool] | None = None, truncated_as_rejected: bool = False):
    """(first positive index, first non-positive index), each None when there is none: the
    chosen and rejected generation of a pair (D_SFT takes the chosen). A truncated generation
    (``cut``) is never positive and is a rejected candidate only if ``truncated_as_rejected``."""
    cut = cut or [False] * len(pos)
    first_pos = next((i for i, (p, c) in enumerate(zip(pos, cut)) if p and not c), None)
    first_neg = next(
        (i for i, (p, c) in enumerate(zip(pos, cut)) if (c and truncated_as_rejected) or (not p and not c)),
        None,
    )
    return first_pos, first_neg


def pair_indices(
    pos: list[bool],
    cut: list[bool] | None = None,
    truncated_as_rejected: bool = False,
    mode: str = "first",
    cap: int | None = None,
) -> tuple[list[tuple[int, int]], int]:
    """The (chosen, rejected) generation indices of one problem's pairs, and how many the cap
    left out.

    Candidates as in :func:`choose_pair`: chosen = positive and not truncated; rejected =
    non-positive and not truncated, or truncated when ``truncated_as_rejected``. ``mode``
    ``"first"``: the paper's one pair (first chosen x first rejected). ``"all"``: every chosen x
    rejected combination, ordered by the sum of their ranks among the candidates, then the
    chosen's rank - a deterministic order whose first pair is ``"first"``'s and whose first
    ``k`` pairs spread over the traces - and at most ``cap`` of them (``None``: all).
    ``"groups"``: as ``"all"``, never capped.
    """
    cut = cut or [False] * len(pos)
    chosen = [i for i, (p, c) in enumerate(zip(pos, cut)) if p and not c]
    rejected = [i for i, (p, c) in enumerate(zip(pos, cut)) if (c and truncated_as_rejected) or (not p and not c)]
    if not chosen or not rejected:
        return [], 0
    if mode == "first":
        return [(chosen[0], rejected[0])], 0
    if mode == "groups":
        cap = None  # a group is all of its pairs
    ranked = sorted(((a, b) for a in range(len(chosen)) for b in range(len(rejected))), key=lambda ab: (sum(ab), ab[0]))
    pairs = [(chosen[a], rejected[b]) for a, b in ranked]
    kept = pairs if cap is None else pairs[:cap]
    return kept, len(pairs) - len(kept)


def pair_counts(pairs_mode: str, selected, final) -> dict:
    """Pairs per problem of D_Pref after selection and at the end: ``{"mode", "problems",
    "pairs", "histogram": {pairs per problem: problems}}`` for each (the curation report)."""

    def count(items) -> dict:
        per = Counter(row["row_index"] for row, *_ in items)
        return {"problems": len(per), "pairs": len(items),
                "histogram": {str(k): v for k, v in sorted(Counter(per.values()).items())}}  # fmt: skip

    return {"mode": pairs_mode, "selected": count(selected), "final": count(final)}


def pair_lines(counts: dict) -> str:
    """Markdown section of :func:`pair_counts` (appended to the curation report)."""
    rows = [
        f"| {where} | {c['problems']:,} | {c['pairs']:,} | "
        + ", ".join(f"{k}: {v:,}" for k, v in c["histogram"].items()) + " |"
        for where, c in (("after select_pref", counts["selected"]), ("final", counts["final"]))
    ]
    return "\n".join([
        "", f"## Pairs per problem (`pairs: {counts['mode']}`)", "",
        "| D_Pref | problems | pairs | pairs per problem: problems |", "|---|---:|---:|---|", *rows, "",
    ])  # fmt: skip


def shuffle_rank(seed: int, n_corpus_rows: int):
    """rank[row_index] = position of that row after ``Dataset.shuffle(seed=seed)``."""
    import numpy as np

    perm = np.random.default_rng(seed).permutation(n_corpus_rows)
    rank = np.empty(n_corpus_rows, dtype=np.int64)
    rank[perm] = np.arange(n_corpus_rows, dtype=np.int64)
    return rank


def normalize_text(text: str) -> str:
    return " ".join(text.lower().strip().split())


def word_ngrams(text: str, n: int) -> set[str]:
    words = normalize_text(text).split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def load_benchmarks(benchmark_paths: dict[str, str] | None) -> dict[str, list[str]]:
    out = {}
    for name, path in (benchmark_paths or {}).items():
        items = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(items, list) or any(not isinstance(x, dict) or "problem" not in x for x in items):
            raise ValueError(f"benchmark {name!r} ({path}): expected a JSON list of objects with 'problem'")
        out[name] = [str(x["problem"]) for x in items]
    return out


def build_ngram_index(benchmarks: dict[str, list[str]], n: int) -> dict[str, tuple[str, int]]:
    """n-gram -> (benchmark name, problem index) of its first occurrence."""
    index: dict[str, tuple[str, int]] = {}
    for name, problems in benchmarks.items():
        for i, p in enumerate(problems):
            for g in word_ngrams(p, n):
                index.setdefault(g, (name, i))
    return index


def contamination(problem: str, index: dict, n: int) -> tuple[str, int, str] | None:
    if not index:
        return None
    for g in sorted(word_ngrams(problem, n)):
        hit = index.get(g)
        if hit is not None:
            return hit[0], hit[1], g
    return None


class TokenCounter:
    """Token counts with the student's tokenizer, in the units training uses
    (:mod:`redi.chat_template`): a prompt is its generation prompt (contents as plain text), a
    response is THE response as trained (content as plain text + the end-of-turn token,
    :func:`redi.chat_template.response_lengths`), so a pair kept at ``max_response_length``
    reaches training whole. ``control_texts`` counts the texts seen whose content spells a control
    token (kept as text; the funnel reports it)."""

    #: texts per tokenizer call, and characters per call: a call's encodings stay bounded however
    #: long the traces; read by :mod:`redi.chat_template`'s batching
    BATCH = 256
    MAX_CHARS = 2_000_000

    def __init__(self, tokenizer_path, instruction: str, trust_remote_code: bool = False):
        from transformers import AutoTokenizer

        from redi.model.base import trusts_remote_code  # or as the student was prepared

        trust = trusts_remote_code(tokenizer_path, trust_remote_code)
        self.tok = AutoTokenizer.from_pretrained(str(tokenizer_path), trust_remote_code=trust)
        if not getattr(self.tok, "chat_template", None):
            raise ValueError(f"{tokenizer_path}: the student tokenizer has no chat template")
        if getattr(self.tok, "backend_tokenizer", None) is None:
            raise ValueError(f"{self.tok.name_or_path}: curation needs a fast (Rust) tokenizer")
        self.instruction = instruction
        self.control_texts: Counter = Counter()

    def _count_controls(self, role: str, texts: list[str]) -> None:
        from redi.chat_template import spelled_controls

        for text in texts:
            found = spelled_controls(self.tok, text)
            if found:
                self.control_texts[role] += 1
                for tok in set(found):
                    self.control_texts[f"{role} {tok}"] += 1

    def prompt_lengths(self, problems: list[str]) -> list[int]:
        from redi.chat_template import prompt_ids

        self._count_controls("problems", problems)
        msgs = [user_messages(p, self.instruction) for p in problems]
        return [len(ids) for ids in prompt_ids(self.tok, msgs)]

    def response_lengths(self, texts: list[str]) -> list[int]:
        from redi.chat_template import response_lengths

        self._count_controls("responses", texts)
        return response_lengths(self.tok, texts, self.BATCH, self.MAX_CHARS)


# --------------------------------------------------------------------------- the funnel


@dataclass
class Step:
    """What one funnel step dropped: ``reasons`` (a Counter) and one reject line per row;
    ``notes`` go into the step's report entry."""

    name: str
    reasons: Counter = field(default_factory=Counter)
    lines: list[dict] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def drop(self, row: dict, reason: str, detail: str = "", **extra) -> None:
        self.reasons[reason] += 1
        self.lines.append(
            {
                "row_index": row["row_index"],
                "problem_id": row.get("problem_id"),
                "source": row.get("source"),
                "step": self.name,
                "reason": reason,
                "detail": detail,
                **extra,
            }
        )


class Funnel:
    """The report's step list, in order, and the rejects file (one line per dropped row)."""

    def __init__(self, rejects_path):
        self.rejects_path = rejects_path
        self.rejects = JsonlWriter(rejects_path)
        self.steps: list[dict] = []

    def add(self, step: Step, kept: int) -> None:
        """Record a step that may drop rows (its entry has ``dropped`` and ``reasons``)."""
        for line in step.lines:
            self.rejects.write(line)
        self.steps.append(
            {"step": step.name, "kept": kept, "dropped": sum(step.reasons.values()),
             "reasons": dict(sorted(step.reasons.items())), **step.notes}  # fmt: skip
        )

    def keep(self, kept: list, step: Step) -> list:
        """Record ``step`` with the number of ``kept`` rows; returns ``kept``."""
        self.add(step, len(kept))
        return kept

    def note(self, name: str, kept, **extra) -> None:
        """Record a step that drops nothing (counts only)."""
        self.steps.append({"step": name, "kept": kept, **extra})

    def __enter__(self) -> Funnel:
        return self

    def __exit__(self, *exc) -> None:
        self.rejects.close()  # also on an error: the lines so far say what was dropped


def copy_normalize(funnel: Funnel, meta: dict | None) -> None:
    """The corpus and normalise steps, from the verified table's footer; normalise's reject
    lines are copied in, so the rejects file names every dropped corpus row."""
    if meta is None:
        return
    funnel.note("corpus", meta.get("input_rows"), schema=meta.get("schema"))
    step = Step("normalize", Counter(meta.get("reject_reasons", {})), notes={"notes": meta.get("notes", {})})
    funnel.add(step, meta.get("canonical_rows"))
    src = meta.get("rejects_path")
    if src and Path(src).exists() and Path(src).resolve() != Path(funnel.rejects_path).resolve():
        with open(src, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    funnel.rejects.write(json.loads(line))


#: the verified columns the funnel reads from a row (besides the label lists its rule reads):
#: validity, source, truncation, the problem text (prompt tokens, decontamination, the sets)
ROW_FIELDS = ("row_index", "problem_id", "source", "problem", "problem_is_valid", "schema",
              "is_reasoning_complete", "finish_reasons")  # fmt: skip


def read_rows(verified_path, rule: str) -> list[dict]:
    """Pass 1: every verified row with only the fields the funnel reads (:data:`ROW_FIELDS` and
    the rule's label lists; never the generation texts), plus ``n_generations``. Stops when the
    rule needs lists the table cannot have."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(verified_path))
    names = pf.schema_arrow.names
    if rule == "recomputed" and "label_recomputed" not in names:
        raise ValueError(f"{verified_path}: label_rule 'recomputed' needs label_recomputed (run the verify stage)")
    # only what the steps read: the rows stay in memory until the sets are written
    cols = [c for c in names if c in ROW_FIELDS or c in RULE_LISTS[rule] or c == DISPUTE_VERIFIER[rule]]
    # gather's tables (footer key redi.verify) have one verify_status per generation: the counts
    # come from that list, so this pass never decodes the generation texts
    from_gather = read_kv_meta(verified_path, META_VERIFY) is not None and "verify_status" in names
    count_col = "verify_status" if from_gather else "generations"
    rows = []
    for batch in iter_parquet_batches(verified_path, 4096, list(dict.fromkeys(cols + [count_col]))):
        n_gens = pc.list_value_length(batch.column(count_col)).to_pylist()
        for row, n_gen in zip(batch.select(cols).to_pylist(), n_gens):
            row["n_generations"] = int(n_gen or 0)
            rows.append(row)
    if rule in ("llama_and_mv", "llama_or_mv") and rows and all(r.get("label_llama") is None for r in rows):
        raise ValueError(
            f"label_rule {rule!r} needs Llama judge labels, but {verified_path} has none "
            "(MV-only corpus); use label_rule 'mv' or 'recomputed'"
        )
    return rows


def valid_only(rows: list[dict], cfg: CurationConfig, has_validity: bool | None):
    """Keep ``problem_is_valid == "yes"``. A null is dropped where the corpus has the column
    (``has_validity``; hand-written tables without normalise metadata: schema "raw"); rows of
    corpora without it are kept when ``keep_unknown_validity`` and counted."""
    step = Step("valid_only", notes={"validity_unknown_kept": 0})
    if not cfg.valid_only:
        return rows, step
    kept = []
    for row in rows:
        v = is_valid(row.get("problem_is_valid"))
        column = has_validity if has_validity is not None else row.get("schema") == "raw"
        if v is None and column:
            step.drop(row, "problem_is_valid null", "the corpus has the column")
        elif v is None and not cfg.keep_unknown_validity:
            step.drop(row, "problem_is_valid missing")
        elif v is False:
            step.drop(row, "problem_is_valid != yes", repr(row.get("problem_is_valid")))
        else:
            step.notes["validity_unknown_kept"] += v is None
            kept.append(row)
    return kept, step


def exclude_sources(rows: list[dict], cfg: CurationConfig):
    excluded = set(cfg.exclude_sources or [])
    step = Step("exclude_sources", notes={"excluded": sorted(excluded)})
    kept = []
    for row in rows:
        if row["source"] in excluded:
            step.drop(row, f"source {row['source']}")
        else:
            kept.append(row)
    return kept, step


def label_lists(rows: list[dict], cfg: CurationConfig):
    """Drop rows lacking a label list the rule reads (null or the wrong length)."""
    step = Step("label_lists", notes={"label_rule": cfg.label_rule, "reads": cfg.rule_lists})
    kept = []
    for row in rows:
        problem = label_problem(row, cfg.label_rule, row["n_generations"])
        if problem is None:
            kept.append(row)
        else:
            step.drop(row, *problem)
    return kept, step


def shuffle(rows: list[dict], seed: int, n_corpus_rows: int | None) -> tuple[list[dict], dict]:
    """Order rows as ``Dataset.shuffle(seed)`` orders the original corpus; ``row_index`` kept."""
    n_perm = max(int(n_corpus_rows or 0), max((r["row_index"] for r in rows), default=-1) + 1)
    rank = shuffle_rank(int(seed), n_perm)
    return sorted(rows, key=lambda r: int(rank[r["row_index"]])), {"seed": seed, "permutation_size": n_perm}


def select(rows: list[dict], cfg: CurationConfig):
    """D_SFT items ``(row, chosen)`` and D_Pref items ``(row, chosen, rejected)``, with the two
    steps' drops (:func:`choose_pair` on the rule's positives and the truncation flags)."""
    as_rejected = bool(cfg.truncated_as_rejected)
    s_sft = Step("select_sft", notes={"truncated_generations": 0, "truncated_labelled_positive": 0})
    pair_notes = {"pairs": cfg.pairs, "max_pairs_per_problem": cfg.max_pairs_per_problem, "pairs_over_cap": 0}
    s_pref = Step("select_pref", notes={"truncated_as_rejected": as_rejected, **pair_notes})
    sft, pref = [], []
    for row in rows:
        pos = positives(row, cfg.label_rule)
        cut = truncated(row, row["n_generations"])
        s_sft.notes["truncated_generations"] += sum(cut)
        s_sft.notes["truncated_labelled_positive"] += sum(p and c for p, c in zip(pos, cut))
        i_pos, i_neg = choose_pair(pos, cut, as_rejected)
        if i_pos is None:
            why = "no positive generation"
            if any(p and c for p, c in zip(pos, cut)):
                why = "positive generations all truncated"
            s_sft.drop(row, why)
            s_pref.drop(row, why)
            continue
        sft.append((row, i_pos))
        if i_neg is None:
            why = "no non-positive generation"
            if any(c and i != i_pos for i, c in enumerate(cut)):
                why = "non-positive generations all truncated (truncated_as_rejected false)"
            s_pref.drop(row, why)
            continue
        pairs, over_cap = pair_indices(pos, cut, as_rejected, cfg.pairs, cfg.max_pairs_per_problem)
        s_pref.notes["pairs_over_cap"] += over_cap
        pref.extend((row, i, j) for i, j in pairs)
    return sft, pref, s_sft, s_pref


def disputed(sft: list, pref: list, cfg: CurationConfig):
    """Examples a second verifier disputes (:data:`redi.data.config.DISPUTE_VERIFIER`): D_Pref
    pairs whose rejected trace it calls correct, D_SFT rows whose trace it calls wrong.

    Under the paper's rule (Llama judge AND Math-Verify) a trace that Math-Verify calls correct
    but the judge wrong becomes a rejected trace. The paper's rule is kept: the steps
    ``disputed_sft`` / ``disputed_pref`` count these examples (notes ``disputed``, and
    ``no_second_label`` for rows whose table has no usable list) and drop them only with
    ``drop_disputed``. Returns ``(sft, pref, step_sft, step_pref)``.
    """
    col = DISPUTE_VERIFIER[cfg.label_rule]
    drop = bool(cfg.drop_disputed)
    steps = {}
    for name in ("sft", "pref"):
        steps[name] = Step(f"disputed_{name}", notes={"verifier": col, "drop_disputed": drop, "disputed": 0,
                                                      "no_second_label": 0})  # fmt: skip

    def second(row: dict, gen: int) -> bool | None:
        labels = row.get(col)
        if labels is None or len(labels) != row["n_generations"] or labels[gen] is None:
            return None
        return bool(labels[gen])

    def keep(items, name: str, gen_of, disputed_when: bool, what: str) -> list:
        step, kept = steps[name], []
        for item in items:
            row, gen = item[0], gen_of(item)
            verdict = second(row, gen)
            step.notes["no_second_label"] += verdict is None
            if verdict is disputed_when:
                step.notes["disputed"] += 1
                if drop:
                    step.drop(row, f"{what} called {'correct' if disputed_when else 'wrong'} by {col}", gen_index=gen)
                    continue
            kept.append(item)
        return kept

    sft = keep(sft, "sft", lambda it: it[1], False, "trace")
    pref = keep(pref, "pref", lambda it: it[2], True, "rejected trace")
    return sft, pref, steps["sft"], steps["pref"]


class TextStore:
    """The selected generation texts, spilled to a temporary file beside the outputs: memory
    holds only ``(row_index, gen_index) -> (offset, bytes)`` (the full corpus' selected
    traces are ~5 GB of text). ``store[key]`` reads one text back; iteration gives the keys in
    file (row) order. Close it (or use ``with``) to delete the file."""

    def __init__(self, folder):
        import tempfile

        Path(folder).mkdir(parents=True, exist_ok=True)
        self._fh = tempfile.TemporaryFile(dir=str(folder), prefix=".curate-texts-")
        self._where: dict[tuple[int, int], tuple[int, int]] = {}
        self._end = 0

    def add(self, key: tuple[int, int], text: str) -> None:
        data = text.encode("utf-8", errors="surrogatepass")
        self._fh.seek(self._end)
        self._fh.write(data)
        self._where[key] = (self._end, len(data))
        self._end += len(data)

    def __getitem__(self, key: tuple[int, int]) -> str:
        offset, size = self._where[key]
        self._fh.seek(offset)
        return self._fh.read(size).decode("utf-8", errors="surrogatepass")

    def __contains__(self, key) -> bool:
        return key in self._where

    def __iter__(self):
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> TextStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: verified rows per read batch of fetch_texts: the pass holds one batch's texts at a time
FETCH_BATCH_ROWS = 256


def fetch_texts(verified_path, items, folder) -> TextStore:
    """Pass 2: only the selected generation texts, ``(row_index, gen_index) -> text``, streamed
    from the verified table ``FETCH_BATCH_ROWS`` rows at a time into a :class:`TextStore` in
    ``folder``; rows with nothing selected are filtered out before their texts are decoded."""
    import pyarrow as pa

    need: dict[int, set[int]] = {}
    for row, *gens in items:
        need.setdefault(row["row_index"], set()).update(gens)
    texts = TextStore(folder)
    for batch in iter_parquet_batches(verified_path, FETCH_BATCH_ROWS, ["row_index", "generations"]):
        ris = batch.column("row_index").to_pylist()
        mask = [ri in need for ri in ris]
        if not any(mask):
            continue
        batch = batch.filter(pa.array(mask))
        gens_col = batch.column("generations")
        for k, ri in enumerate(batch.column("row_index").to_pylist()):
            gens = gens_col[k]
            for gi in sorted(need[ri]):
                texts.add((ri, gi), gens[gi].as_py())
    return texts


def token_lengths(counter: TokenCounter, sft, texts) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    """Prompt tokens by row_index and response tokens by (row_index, gen_index). Every D_Pref
    row is also a D_SFT row, so the SFT rows cover all prompts; each text is tokenised once,
    a bounded batch at a time (``texts`` may be a :class:`TextStore` on disk)."""
    prompt_len = dict(zip([r["row_index"] for r, _ in sft], counter.prompt_lengths([r["problem"] for r, _ in sft])))
    keys = sorted(texts)
    resp_len: dict[tuple[int, int], int] = {}
    for k in range(0, len(keys), TokenCounter.BATCH):
        part = keys[k : k + TokenCounter.BATCH]
        resp_len.update(zip(part, counter.response_lengths([texts[key] for key in part])))
    return prompt_len, resp_len


def length_filter(items, name: str, roles: tuple[str, ...], prompt_len, resp_len, cfg: CurationConfig):
    """Drop items whose prompt or any response is over the caps. ``items`` are ``(row, *gen
    indices)``; ``roles`` name those generations in the reasons ("chosen ", "rejected "; "")."""
    max_p, max_r = cfg.max_prompt_length, cfg.max_response_length
    step = Step(name, notes={"max_prompt_length": max_p, "max_response_length": max_r})
    kept = []
    for row, *gens in items:
        lp = prompt_len[row["row_index"]]
        over = [(role, g, resp_len[(row["row_index"], g)]) for role, g in zip(roles, gens)]
        over = [o for o in over if o[2] > max_r]
        if lp > max_p:
            step.drop(row, "prompt too long", f"{lp} > {max_p} tokens")
        elif over:
            role, g, lr = over[0]
            step.drop(row, f"{role}response too long", f"{lr} > {max_r} tokens", gen_index=g)
        else:
            kept.append((row, *gens))
    return kept, step


def decontaminate(items, name: str, index: dict, n: int, hits: list[dict], **notes):
    """Drop items whose problem shares a word n-gram with a benchmark problem (appended to
    ``hits`` for the report's table)."""
    step, kept = Step(name, notes={"ngram": n, **notes}), []
    for item in items:
        row = item[0]
        hit = contamination(row["problem"], index, n)
        if hit is None:
            kept.append(item)
            continue
        bench, idx, gram = hit
        step.drop(row, f"{n}-gram overlap with {bench}", gram, benchmark=bench, benchmark_index=idx)
        hits.append(
            {"set": name, "row_index": row["row_index"], "benchmark": bench, "benchmark_index": idx, "ngram": gram}
        )
    return kept, step


def group_counts(pref) -> dict[int, dict[str, int]]:
    """Per row_index: how many distinct chosen and rejected traces its pairs use. With ``pairs:
    groups`` the pairs of a problem are every chosen x rejected combination of its traces that
    passed every filter (a filter that drops a trace drops all of its pairs), so these are the
    problem's surviving positive and negative traces: its group."""
    seen: dict[int, tuple[set, set]] = {}
    for row, i, j in pref:
        c, r = seen.setdefault(row["row_index"], (set(), set()))
        c.add(i)
        r.add(j)
    return {k: {"chosen": len(c), "rejected": len(r)} for k, (c, r) in seen.items()}


def write_sets(out_sft, out_pref, sft, pref, texts, pair_ids: bool = False, groups: bool = False) -> None:
    """The curated sets as JSON lines (shuffled order); messages through :mod:`redi.prompts`.
    ``pair_ids``: pair ids name their generations (``<id>-c<chosen>-r<rejected>``; a problem
    has several pairs with ``pairs: all``). ``groups``: each pair row also carries ``group``
    (:func:`group_counts` of its problem)."""
    counts = group_counts(pref) if groups else {}

    def head(row, *gens):
        ex_id = f"{row['problem_id']}-{row['row_index']}"
        if gens and pair_ids:
            ex_id += f"-c{gens[0]}-r{gens[1]}"
        return {"id": ex_id, "row_index": row["row_index"], "source": row["source"]}

    with JsonlWriter(out_sft) as w:
        for row, i in sft:
            w.write({**head(row), "messages": conversation_messages(row["problem"], texts[(row["row_index"], i)])})
    with JsonlWriter(out_pref) as w:
        for row, i, j in pref:
            w.write(
                {
                    **head(row, i, j),
                    "prompt": user_messages(row["problem"]),
                    "chosen": assistant_messages(texts[(row["row_index"], i)]),
                    "rejected": assistant_messages(texts[(row["row_index"], j)]),
                    **({"group": counts[row["row_index"]]} if groups else {}),
                }
            )


# --------------------------------------------------------------------------- main


def curate(
    verified_path,
    tokenizer_path,
    out_sft,
    out_pref,
    report_json,
    report_md,
    rejects_path,
    cfg: CurationConfig | dict | None = None,
    benchmark_paths: dict[str, str] | None = None,
    origins_path=None,
    trust_remote_code: bool = False,
) -> dict:
    """Curate D_SFT (``out_sft``) and D_Pref (``out_pref``) from the verified corpus; write the
    report (JSON + markdown) and one reject line per dropped row. Returns the report dict.

    ``cfg``: :class:`CurationConfig` (a dict is read with ``from_dict``). ``benchmark_paths``:
    benchmark name -> JSON list of ``{"problem": ...}`` for decontamination. ``origins_path``: a
    teacher corpus' ``origins.json`` (the report then counts what corpus and teacher traces
    contributed, ``curate_report.source_counts``). ``trust_remote_code``: load the
    tokenizer with the model's own code (also when the student was prepared with
    ``student.trust_remote_code``, which its tokenizer records). Raises
    ``ValueError`` for an empty set (after writing the report) or a rule the corpus cannot serve.
    """
    cfg = CurationConfig.from_dict(cfg)
    meta = read_kv_meta(verified_path, META_NORMALIZE)  # normalise's summary, None if absent
    with Funnel(rejects_path) as funnel:  # the rejects file is complete even when a step stops
        copy_normalize(funnel, meta)
        rows = read_rows(verified_path, cfg.label_rule)
        funnel.note("input (verified rows)", len(rows))
        rows = funnel.keep(*valid_only(rows, cfg, (meta or {}).get("has_problem_is_valid")))
        rows = funnel.keep(*exclude_sources(rows, cfg))
        rows = funnel.keep(*label_lists(rows, cfg))
        rows, notes = shuffle(rows, cfg.shuffle_seed, (meta or {}).get("input_rows"))
        funnel.note("shuffle", len(rows), **notes)
        sft_sel, pref_sel, s_sft, s_pref = select(rows, cfg)
        sft, pref = funnel.keep(sft_sel, s_sft), funnel.keep(pref_sel, s_pref)
        sft, pref, d_sft, d_pref = disputed(sft, pref, cfg)
        sft, pref = funnel.keep(sft, d_sft), funnel.keep(pref, d_pref)

        # an unnamed temporary file: its space is freed when closed below, or on any error when
        # the store is collected or the process exits
        texts = fetch_texts(verified_path, sft_sel + pref_sel, Path(out_sft).parent)
        counter = TokenCounter(tokenizer_path, OPENR1_INSTRUCTION, trust_remote_code=trust_remote_code)
        prompt_len, resp_len = token_lengths(counter, sft_sel, texts)
        lengths = (prompt_len, resp_len)
        pref_step = length_filter(pref, "length_filter_pref", ("chosen ", "rejected "), *lengths, cfg)
        pref_step[1].notes["control_token_texts"] = dict(sorted(counter.control_texts.items()))
        pref = funnel.keep(*pref_step)
        if cfg.length_filter_sft:
            sft = funnel.keep(*length_filter(sft, "length_filter_sft", ("",), *lengths, cfg))

        hits: list[dict] = []
        if cfg.decontaminate.enabled:
            n, benchmarks = cfg.decontaminate.ngram, load_benchmarks(benchmark_paths)
            index = build_ngram_index(benchmarks, n)
            sizes = {k: len(v) for k, v in benchmarks.items()}
            sft = funnel.keep(*decontaminate(sft, "decontaminate_sft", index, n, hits, benchmarks=sizes))
            pref = funnel.keep(*decontaminate(pref, "decontaminate_pref", index, n, hits))

    paths = {"verified": verified_path, "tokenizer": tokenizer_path, "rejects": rejects_path}
    report = build_report(cfg, paths, funnel.steps, (sft_sel, pref_sel), (sft, pref), lengths,
                          hits, funnel.rejects.count, meta)  # fmt: skip
    if origins_path is not None:
        from redi.teacher.corpus import read_origins

        report["sources"] = source_counts(read_origins(origins_path), (sft_sel, pref_sel), (sft, pref))
    report["pairs_per_problem"] = pair_counts(cfg.pairs, pref_sel, pref)
    write_json_atomic(report_json, report)
    write_text_atomic(report_md, render_markdown(report) + pair_lines(report["pairs_per_problem"]))
    for name, final, which in (("D_SFT", sft, "sft"), ("D_Pref", pref, "pref")):
        if not final:
            for stale in (out_sft, out_pref):  # no earlier run's file may pass for this one
                Path(stale).unlink(missing_ok=True)
            raise ValueError(empty_message(name, funnel.steps, which, report_md, rejects_path))
    with texts:
        write_sets(out_sft, out_pref, sft, pref, texts, pair_ids=cfg.pairs != "first", groups=cfg.pairs == "groups")
    log.info("curate: sft=%d pref=%d (before length filter %d)", len(sft), len(pref), len(pref_sel))
    return report


__all__ = ["CurationConfig", "Funnel", "Step", "RULE_LISTS", "choose_pair", "curate"]
