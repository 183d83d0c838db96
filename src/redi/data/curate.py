"""Curation of the verified teacher corpus into D_SFT and D_Pref (the paper's rules by default).

Steps, in order (each counted in the report; every dropped row gets a reject line):

1. ``valid_only``: keep ``problem_is_valid.strip().lower() == "yes"`` (the paper). A null value
   in a corpus that has the column (Raw) is dropped (``problem_is_valid null``), as the paper's
   ``.strip()`` rule drops it; rows of corpora without the column (220k-flat / MV-only) are kept
   when ``keep_unknown_validity`` (default) and counted separately (issue 11).
2. ``exclude_sources``: drop rows whose ``source`` is listed (default ``["cn_k12"]``).
3. ``label_lists``: drop rows that lack a label list ``label_rule`` reads (see
   :data:`RULE_LISTS`), or whose list does not match the number of generations; the reason
   names the rule, the list and its corpus field (``label_rule mv needs label_mv
   (correctness_math_verify): null``). Lists the rule does not read are never required: a 220k
   row with ``correctness_llama = null`` is kept under ``mv``.
4. ``shuffle``: order rows as ``datasets.Dataset.shuffle(seed)`` orders the *original* corpus
   (``numpy.random.default_rng(seed).permutation(n_corpus_rows)``); ``row_index`` is kept.
5. ``select``: a generation is positive when ``label_rule`` holds: ``llama_and_mv`` (default:
   Llama judge AND corpus Math-Verify), ``llama_or_mv``, ``mv``, ``recomputed`` (our bounded
   Math-Verify label). A truncated generation (``is_reasoning_complete`` false or
   ``finish_reasons`` "length", 220k) is never positive; it may be the rejected trace only when
   ``truncated_as_rejected`` (default false: a cut-off answer teaches nothing about a wrong one).
   D_SFT: first positive generation of every row that has one. D_Pref: first positive =
   chosen, first non-positive (allowed) generation = rejected, for rows that have both. The
   ``expected`` numbers (paper: 77,629 / 53,175) are compared with the counts at this step.
6. ``length_filter`` (D_Pref; D_SFT too if ``length_filter_sft``): prompt tokens =
   ``len(apply_chat_template([user], add_generation_prompt=True))`` with the student's
   tokenizer; response tokens = tokens of the assistant content (no special tokens).
7. ``decontaminate``: drop rows whose problem shares a normalised (lower-cased,
   whitespace-split, as in Open-R1's ``scripts/decontaminate.py``) word n-gram with any
   benchmark problem. Problems shorter than n words have no n-grams and are never dropped.

An empty D_SFT or D_Pref stops curation (``ValueError``) naming the step that removed the last
row, with the count after every step; the report is written first, the data files are not, so
no training job starts on an empty set.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from redi.data.io import META_NORMALIZE, JsonlWriter, mkparent, read_kv_meta, write_json
from redi.data.normalize import LABEL_FIELDS
from redi.prompts import OPENR1_INSTRUCTION, user_content

log = logging.getLogger(__name__)

LABEL_RULES = ("llama_and_mv", "llama_or_mv", "mv", "recomputed")

DEFAULT_CFG: dict = {
    "valid_only": True,
    "keep_unknown_validity": True,
    "exclude_sources": ["cn_k12"],
    "label_rule": "llama_and_mv",
    "truncated_as_rejected": False,
    "shuffle_seed": 42,
    "max_prompt_tokens": 800,
    "max_response_tokens": 19000,
    "length_filter_sft": False,
    # `benchmarks` names the sets (the workflow resolves them into `benchmark_paths`)
    "decontaminate": {"enabled": True, "ngram": 8, "benchmarks": []},
    "expected": {"sft": None, "pairs_before_length_filter": None},
}

PAPER_EXPECTED = {"sft": 77629, "pairs_before_length_filter": 53175}


def resolve_cfg(cfg: dict | None) -> dict:
    out = json.loads(json.dumps(DEFAULT_CFG))
    for k, v in (cfg or {}).items():
        if k not in out:
            raise ValueError(f"unknown curation key {k!r}; known: {sorted(out)}")
        if isinstance(out[k], dict) and isinstance(v, dict):
            unknown = set(v) - set(out[k])
            if unknown:
                raise ValueError(f"unknown keys in curation.{k}: {sorted(unknown)}")
            out[k].update(v)
        elif v is not None:
            out[k] = v
    if out["label_rule"] not in LABEL_RULES:
        raise ValueError(f"label_rule must be one of {LABEL_RULES}, got {out['label_rule']!r}")
    return out


# --------------------------------------------------------------------------- rules


def is_valid(value) -> bool | None:
    """``problem_is_valid`` rule; None when the corpus has no validity information."""
    if value is None:
        return None
    return str(value).strip().lower() == "yes"


# label_rule -> the canonical label lists it reads (the only ones a row must have)
RULE_LISTS: dict[str, tuple[str, ...]] = {
    "llama_and_mv": ("label_llama", "label_mv"),
    "llama_or_mv": ("label_llama", "label_mv"),
    "mv": ("label_mv",),
    "recomputed": ("label_recomputed",),
}


def rule_lists(rule: str) -> list[str]:
    return list(RULE_LISTS[rule])


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


def select(pos: list[bool], cut: list[bool] | None = None, truncated_as_rejected: bool = False):
    """(first positive index, first non-positive index); a truncated generation (``cut``) is
    never positive and is a rejected candidate only if ``truncated_as_rejected``."""
    cut = cut or [False] * len(pos)
    first_pos = next((i for i, (p, c) in enumerate(zip(pos, cut)) if p and not c), None)
    first_neg = next(
        (i for i, (p, c) in enumerate(zip(pos, cut)) if (c and truncated_as_rejected) or (not p and not c)),
        None,
    )
    return first_pos, first_neg


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
    def __init__(self, tokenizer_path, instruction: str):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(tokenizer_path), trust_remote_code=False)
        if not getattr(self.tok, "chat_template", None):
            raise ValueError(f"{tokenizer_path}: the student tokenizer has no chat template")
        self.instruction = instruction

    def prompt_lengths(self, problems: list[str]) -> list[int]:
        texts = [
            self.tok.apply_chat_template(
                [{"role": "user", "content": user_content(p, self.instruction)}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for p in problems
        ]
        return self._lengths(texts)

    def response_lengths(self, texts: list[str]) -> list[int]:
        return self._lengths(texts)

    def _lengths(self, texts: list[str], chunk: int = 256) -> list[int]:
        out: list[int] = []
        for k in range(0, len(texts), chunk):
            enc = self.tok(texts[k : k + chunk], add_special_tokens=False)["input_ids"]
            out.extend(len(x) for x in enc)
        return out


# --------------------------------------------------------------------------- main


def _step(name: str, kept: int, dropped: Counter | None = None, **extra) -> dict:
    d = {"step": name, "kept": kept}
    if dropped is not None:
        d["dropped"] = sum(dropped.values())
        d["reasons"] = dict(sorted(dropped.items()))
    d.update(extra)
    return d


def curate(
    verified_path,
    tokenizer_path,
    out_sft,
    out_pref,
    report_json,
    report_md,
    rejects_path,
    cfg: dict | None = None,
    benchmark_paths: dict[str, str] | None = None,
) -> dict:
    """Curate D_SFT (``out_sft``) and D_Pref (``out_pref``) from the verified corpus; write the
    report (JSON + markdown) and one reject line per dropped row. Returns the report dict."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cfg = resolve_cfg(cfg)
    rule = cfg["label_rule"]
    # the one instruction evaluation also uses (redi.prompts), so prompts cannot drift
    instruction = OPENR1_INSTRUCTION
    excluded = set(cfg["exclude_sources"] or [])
    normalize_meta = read_kv_meta(verified_path, META_NORMALIZE)
    rejects = JsonlWriter(rejects_path)
    steps: list[dict] = []

    def reject(row, step, reason, detail="", **extra):
        rejects.write(
            {
                "row_index": row["row_index"],
                "problem_id": row.get("problem_id"),
                "source": row.get("source"),
                "step": step,
                "reason": reason,
                "detail": detail,
                **extra,
            }
        )

    # Rows rejected before curation (normalisation) are copied in, so this file is complete.
    n_corpus_rows = None
    if normalize_meta is not None:
        n_corpus_rows = normalize_meta.get("input_rows")
        steps.append(
            {
                "step": "corpus",
                "kept": normalize_meta.get("input_rows"),
                "schema": normalize_meta.get("schema"),
            }
        )
        steps.append(
            _step(
                "normalize",
                normalize_meta.get("canonical_rows"),
                Counter(normalize_meta.get("reject_reasons", {})),
                notes=normalize_meta.get("notes", {}),
            )
        )
        src = normalize_meta.get("rejects_path")
        if src and Path(src).exists() and Path(src).resolve() != Path(rejects_path).resolve():
            with open(src, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        rejects.write(json.loads(line))

    # ---- pass 1: rules on labels/metadata only (generation texts are not kept in memory)
    pf = pq.ParquetFile(str(verified_path))
    cols = [c for c in pf.schema_arrow.names if c != "generations"]
    have_cols = set(pf.schema_arrow.names)
    if rule == "recomputed" and "label_recomputed" not in have_cols:
        raise ValueError(
            f"{verified_path}: label_rule 'recomputed' needs label_recomputed (run the verify stage)"
        )
    # where the corpus has a problem_is_valid column a null value is dropped; verified tables
    # without normalise metadata (hand-written) say it through their schema name
    has_validity = (normalize_meta or {}).get("has_problem_is_valid")
    n_in = 0
    drop_valid, drop_src, drop_labels = Counter(), Counter(), Counter()
    validity_unknown = 0
    kept: list[dict] = []
    saw_llama = False
    for batch in pf.iter_batches(batch_size=4096, columns=cols + ["generations"]):
        n_gens = pc.list_value_length(batch.column("generations")).to_pylist()
        for row, n_gen in zip(batch.select(cols).to_pylist(), n_gens):
            n_in += 1
            saw_llama = saw_llama or row.get("label_llama") is not None
            row["n_generations"] = int(n_gen or 0)
            if cfg["valid_only"]:
                v = is_valid(row.get("problem_is_valid"))
                column = has_validity if has_validity is not None else row.get("schema") == "raw"
                if v is None and column:
                    drop_valid["problem_is_valid null"] += 1
                    reject(row, "valid_only", "problem_is_valid null", "the corpus has the column")
                    continue
                if v is None:
                    if not cfg["keep_unknown_validity"]:
                        drop_valid["problem_is_valid missing"] += 1
                        reject(row, "valid_only", "problem_is_valid missing")
                        continue
                    validity_unknown += 1
                elif not v:
                    drop_valid["problem_is_valid != yes"] += 1
                    reject(row, "valid_only", "problem_is_valid != yes", repr(row.get("problem_is_valid")))
                    continue
            if row["source"] in excluded:
                drop_src[f"source {row['source']}"] += 1
                reject(row, "exclude_sources", f"source {row['source']}")
                continue
            problem = label_problem(row, rule, row["n_generations"])
            if problem is not None:
                drop_labels[problem[0]] += 1
                reject(row, "label_lists", problem[0], problem[1])
                continue
            kept.append(row)
    if rule in ("llama_and_mv", "llama_or_mv") and n_in and not saw_llama:
        rejects.close()
        raise ValueError(
            f"label_rule {rule!r} needs Llama judge labels, but {verified_path} has none "
            "(MV-only corpus); use label_rule 'mv' or 'recomputed'"
        )
    steps.append(_step("input (verified rows)", n_in))
    steps.append(
        _step(
            "valid_only", n_in - sum(drop_valid.values()), drop_valid, validity_unknown_kept=validity_unknown
        )
    )
    n_after_valid = n_in - sum(drop_valid.values())
    steps.append(
        _step("exclude_sources", n_after_valid - sum(drop_src.values()), drop_src, excluded=sorted(excluded))
    )
    steps.append(_step("label_lists", len(kept), drop_labels, label_rule=rule, reads=rule_lists(rule)))

    # ---- shuffle (as Dataset.shuffle(seed) over the original corpus), keep row_index
    max_ri = max((r["row_index"] for r in kept), default=-1)
    n_perm = max(int(n_corpus_rows or 0), max_ri + 1)
    rank = shuffle_rank(int(cfg["shuffle_seed"]), n_perm)
    kept.sort(key=lambda r: int(rank[r["row_index"]]))
    steps.append(_step("shuffle", len(kept), seed=cfg["shuffle_seed"], permutation_size=n_perm))

    # ---- select
    sft_sel: list[tuple[dict, int]] = []
    pref_sel: list[tuple[dict, int, int]] = []
    drop_sft, drop_pref = Counter(), Counter()
    as_rejected = bool(cfg["truncated_as_rejected"])
    n_cut = n_cut_pos = 0
    for row in kept:
        pos = positives(row, rule)
        cut = truncated(row, row["n_generations"])
        n_cut += sum(cut)
        n_cut_pos += sum(p and c for p, c in zip(pos, cut))
        i_pos, i_neg = select(pos, cut, as_rejected)
        if i_pos is None:
            why = "no positive generation"
            if any(p and c for p, c in zip(pos, cut)):
                why = "positive generations all truncated"
            drop_sft[why] += 1
            reject(row, "select_sft", why)
            drop_pref[why] += 1
            reject(row, "select_pref", why)
            continue
        sft_sel.append((row, i_pos))
        if i_neg is None:
            why = "no non-positive generation"
            if any(c and i != i_pos for i, c in enumerate(cut)):
                why = "non-positive generations all truncated (truncated_as_rejected false)"
            drop_pref[why] += 1
            reject(row, "select_pref", why)
            continue
        pref_sel.append((row, i_pos, i_neg))
    steps.append(
        _step(
            "select_sft",
            len(sft_sel),
            drop_sft,
            truncated_generations=n_cut,
            truncated_labelled_positive=n_cut_pos,
        )
    )
    steps.append(_step("select_pref", len(pref_sel), drop_pref, truncated_as_rejected=as_rejected))

    # ---- pass 2: fetch only the selected generation texts
    need: dict[int, set[int]] = {}
    for row, i in sft_sel:
        need.setdefault(row["row_index"], set()).add(i)
    for row, i, j in pref_sel:
        need.setdefault(row["row_index"], set()).update((i, j))
    texts: dict[tuple[int, int], str] = {}
    for batch in pf.iter_batches(batch_size=1024, columns=["row_index", "generations"]):
        ris = batch.column("row_index").to_pylist()
        gens_col = batch.column("generations")
        for k, ri in enumerate(ris):
            if ri in need:
                gens = gens_col[k].as_py()
                for gi in need[ri]:
                    texts[(ri, gi)] = gens[gi]

    # ---- length filter
    counter = TokenCounter(tokenizer_path, instruction)
    max_p, max_r = int(cfg["max_prompt_tokens"]), int(cfg["max_response_tokens"])
    drop_len_pref, drop_len_sft = Counter(), Counter()
    # every D_Pref row is also a D_SFT row, so the SFT rows cover all prompts
    prompt_len = dict(
        zip([r["row_index"] for r, _ in sft_sel], counter.prompt_lengths([r["problem"] for r, _ in sft_sel]))
    )
    # each selected generation is tokenised once (a pair's chosen is also the row's SFT example)
    keys = sorted(texts)
    resp_len = dict(zip(keys, counter.response_lengths([texts[k] for k in keys])))
    ch_len = [resp_len[(r["row_index"], i)] for r, i, _ in pref_sel]
    rj_len = [resp_len[(r["row_index"], j)] for r, _, j in pref_sel]
    pref_ok = []
    for (row, i, j), lc, lr in zip(pref_sel, ch_len, rj_len):
        lp = prompt_len[row["row_index"]]
        if lp > max_p:
            drop_len_pref["prompt too long"] += 1
            reject(row, "length_filter_pref", "prompt too long", f"{lp} > {max_p} tokens")
        elif lc > max_r:
            drop_len_pref["chosen response too long"] += 1
            reject(
                row, "length_filter_pref", "chosen response too long", f"{lc} > {max_r} tokens", gen_index=i
            )
        elif lr > max_r:
            drop_len_pref["rejected response too long"] += 1
            reject(
                row, "length_filter_pref", "rejected response too long", f"{lr} > {max_r} tokens", gen_index=j
            )
        else:
            pref_ok.append((row, i, j))
    steps.append(
        _step(
            "length_filter_pref",
            len(pref_ok),
            drop_len_pref,
            max_prompt_tokens=max_p,
            max_response_tokens=max_r,
        )
    )
    sft_resp_len = [resp_len[(r["row_index"], i)] for r, i in sft_sel]
    sft_ok = []
    if cfg["length_filter_sft"]:
        for (row, i), lr in zip(sft_sel, sft_resp_len):
            lp = prompt_len[row["row_index"]]
            if lp > max_p:
                drop_len_sft["prompt too long"] += 1
                reject(row, "length_filter_sft", "prompt too long", f"{lp} > {max_p} tokens")
            elif lr > max_r:
                drop_len_sft["response too long"] += 1
                reject(row, "length_filter_sft", "response too long", f"{lr} > {max_r} tokens", gen_index=i)
            else:
                sft_ok.append((row, i))
        steps.append(_step("length_filter_sft", len(sft_ok), drop_len_sft))
    else:
        sft_ok = list(sft_sel)

    # ---- decontamination
    dec = cfg["decontaminate"] or {}
    dec_on = bool(dec.get("enabled", True))
    n = int(dec.get("ngram", 8))
    benchmarks = load_benchmarks(benchmark_paths) if dec_on else {}
    index = build_ngram_index(benchmarks, n) if dec_on else {}
    contaminated_rows: list[dict] = []

    def decontaminate(items, step):
        out, dropped = [], Counter()
        for item in items:
            row = item[0]
            hit = contamination(row["problem"], index, n)
            if hit is None:
                out.append(item)
                continue
            name, idx, gram = hit
            dropped[f"{n}-gram overlap with {name}"] += 1
            reject(row, step, f"{n}-gram overlap with {name}", gram, benchmark=name, benchmark_index=idx)
            contaminated_rows.append(
                {
                    "set": step,
                    "row_index": row["row_index"],
                    "benchmark": name,
                    "benchmark_index": idx,
                    "ngram": gram,
                }
            )
        return out, dropped

    if dec_on:
        sft_ok, d_sft = decontaminate(sft_ok, "decontaminate_sft")
        pref_ok, d_pref = decontaminate(pref_ok, "decontaminate_pref")
        steps.append(
            _step(
                "decontaminate_sft",
                len(sft_ok),
                d_sft,
                ngram=n,
                benchmarks={k: len(v) for k, v in benchmarks.items()},
            )
        )
        steps.append(_step("decontaminate_pref", len(pref_ok), d_pref, ngram=n))
    rejects.close()

    def rid(row):
        return f"{row['problem_id']}-{row['row_index']}"

    expected = cfg["expected"] or {}
    comparisons = []
    for key, actual, at in (
        ("sft", len(sft_sel), "select_sft"),
        ("pairs_before_length_filter", len(pref_sel), "select_pref"),
    ):
        exp = expected.get(key)
        comparisons.append(
            {
                "quantity": key,
                "at_step": at,
                "expected": exp,
                "actual": actual,
                "match": None if exp is None else int(exp) == actual,
                "paper": PAPER_EXPECTED[key],
            }
        )
    stats = {
        "sft_response_tokens_mean": round(sum(sft_resp_len) / len(sft_resp_len), 1) if sft_resp_len else None,
        "sft_response_tokens_max": max(sft_resp_len) if sft_resp_len else None,
        "pref_chosen_tokens_mean": round(sum(ch_len) / len(ch_len), 1) if ch_len else None,
        "pref_rejected_tokens_mean": round(sum(rj_len) / len(rj_len), 1) if rj_len else None,
        "prompt_tokens_max": max(prompt_len.values()) if prompt_len else None,
    }
    report = {
        "verified": str(verified_path),
        "tokenizer": str(tokenizer_path),
        "cfg": cfg,
        "steps": steps,
        "final": {"sft": len(sft_ok), "pref": len(pref_ok)},
        "expected": comparisons,
        "token_stats": stats,
        "contaminated": contaminated_rows,
        "rejects": str(rejects_path),
        "rejects_count": rejects.count,
        "normalize": normalize_meta,
        "label_lists": {
            "schema": (normalize_meta or {}).get("schema"),
            "corpus": (normalize_meta or {}).get("label_lists"),
            "by_schema": LABEL_FIELDS,
            "rule_reads": rule_lists(rule),
        },
    }
    write_json(report_json, report)
    mkparent(report_md).write_text(render_markdown(report), encoding="utf-8")
    for name, final, which in (("D_SFT", sft_ok, "sft"), ("D_Pref", pref_ok, "pref")):
        if not final:
            for stale in (out_sft, out_pref):  # no earlier run's file may pass for this one
                Path(stale).unlink(missing_ok=True)
            raise ValueError(_empty_message(name, steps, which, report_md, rejects_path))

    # ---- write outputs (shuffled order)
    with JsonlWriter(out_sft) as w:
        for row, i in sft_ok:
            w.write(
                {
                    "id": rid(row),
                    "row_index": row["row_index"],
                    "source": row["source"],
                    "messages": [
                        {"role": "user", "content": user_content(row["problem"], instruction)},
                        {"role": "assistant", "content": texts[(row["row_index"], i)]},
                    ],
                }
            )
    with JsonlWriter(out_pref) as w:
        for row, i, j in pref_ok:
            w.write(
                {
                    "id": rid(row),
                    "row_index": row["row_index"],
                    "source": row["source"],
                    "prompt": [{"role": "user", "content": user_content(row["problem"], instruction)}],
                    "chosen": [{"role": "assistant", "content": texts[(row["row_index"], i)]}],
                    "rejected": [{"role": "assistant", "content": texts[(row["row_index"], j)]}],
                }
            )

    log.info("curate: sft=%d pref=%d (before length filter %d)", len(sft_ok), len(pref_ok), len(pref_sel))
    return report


# the steps each curated set goes through, in order (a step absent from a run is skipped)
_SET_STEPS = {
    "sft": ("select_sft", "length_filter_sft", "decontaminate_sft"),
    "pref": ("select_pref", "length_filter_pref", "decontaminate_pref"),
}
_COMMON_STEPS = ("corpus", "normalize", "input (verified rows)", "valid_only", "exclude_sources", "label_lists")


def _empty_message(name: str, steps: list[dict], which: str, report_md, rejects_path) -> str:
    """Why a curated set is empty: the first step that kept nothing, and the funnel."""
    path = [s for s in steps if s["step"] in _COMMON_STEPS + _SET_STEPS[which]]
    culprit = next((s for s in path if s.get("kept") == 0), path[-1])
    reasons = culprit.get("reasons") or {}
    funnel = " -> ".join(f"{s['step']} {s.get('kept')}" for s in path)
    return (
        f"curation: {name} is empty: step '{culprit['step']}' removed every remaining row"
        + (f" (reasons: {reasons})" if reasons else "")
        + f". Rows kept after each step: {funnel}. Report: {report_md}; one line per dropped row "
        f"in {rejects_path}. Nothing was written for training."
    )


def _label_list_lines(info: dict | None, rule: str) -> list[str]:
    """Which label lists each schema has, which ones ``rule`` reads, and this corpus' counts."""
    if not info:
        return []
    corpus = info.get("corpus") or {}
    lines = [
        "",
        "## Label lists",
        "",
        f"`label_rule: {rule}` reads {', '.join(f'`{c}`' for c in info['rule_reads'])}; a row without "
        "one of them is dropped at `label_lists`, lists the rule does not read are never required.",
        "",
        "| schema | label list | corpus field | read by the rule | rows with it (this corpus) |",
        "|---|---|---|---|---:|",
    ]
    for schema, fields in info["by_schema"].items():
        for col, field in fields.items():
            here = corpus.get(col) if schema == info.get("schema") else None
            count = f"{here['rows_with_list']:,} of {here['canonical_rows']:,}" if here else ""
            mark = " (this corpus)" if schema == info.get("schema") else ""
            read = "yes" if col in info["rule_reads"] else "no"
            lines.append(f"| {schema}{mark} | `{col}` | `{field}` | {read} | {count} |")
    return lines


def render_markdown(report: dict) -> str:
    lines = ["# Curation report", ""]
    cfg = report["cfg"]
    lines += [
        f"- verified corpus: `{report['verified']}`",
        f"- student tokenizer: `{report['tokenizer']}`",
        f"- label rule: `{cfg['label_rule']}`; shuffle seed {cfg['shuffle_seed']}; excluded sources {cfg['exclude_sources']}",
        f"- length limits: prompt <= {cfg['max_prompt_tokens']}, response <= {cfg['max_response_tokens']} tokens",
        f"- decontamination: {cfg['decontaminate']}",
        "",
        "## Expected vs actual",
        "",
        "| quantity | at step | expected (config) | actual | match | paper |",
        "|---|---|---:|---:|---|---:|",
    ]
    for c in report["expected"]:
        exp = "—" if c["expected"] is None else f"{c['expected']:,}"
        match = "—" if c["match"] is None else ("yes" if c["match"] else "**NO**")
        lines.append(
            f"| {c['quantity']} | {c['at_step']} | {exp} | {c['actual']:,} | {match} | {c['paper']:,} |"
        )
    lines += _label_list_lines(report.get("label_lists"), cfg["label_rule"])
    lines += ["", "## Steps", "", "| step | kept | dropped | reasons |", "|---|---:|---:|---|"]
    for s in report["steps"]:
        kept = "—" if s.get("kept") is None else f"{s['kept']:,}"
        dropped = "" if "dropped" not in s else f"{s['dropped']:,}"
        reasons = "; ".join(f"{k}: {v:,}" for k, v in s.get("reasons", {}).items())
        lines.append(f"| {s['step']} | {kept} | {dropped} | {reasons} |")
    notes = next((s.get("notes") for s in report["steps"] if s["step"] == "normalize"), None)
    if notes:
        lines += [
            "",
            "Normalisation notes (nothing dropped): "
            + "; ".join(f"{k}: {v:,}" for k, v in notes.items())
            + ". Rows with the same problem are kept, as in the paper.",
        ]
    lines += [
        "",
        f"**Final:** D_SFT {report['final']['sft']:,} examples, D_Pref {report['final']['pref']:,} pairs.",
        "",
        f"Every dropped row has a line (with `step` and `reason`) in `{report['rejects']}` "
        f"({report['rejects_count']:,} lines).",
        "",
        "## Token statistics (student tokenizer)",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in report["token_stats"].items()]
    if report["contaminated"]:
        lines += [
            "",
            "## Decontamination hits",
            "",
            "| set | row_index | benchmark | index | n-gram |",
            "|---|---:|---|---:|---|",
        ]
        for c in report["contaminated"][:200]:
            lines.append(
                f"| {c['set']} | {c['row_index']} | {c['benchmark']} | {c['benchmark_index']} | `{c['ngram']}` |"
            )
        if len(report["contaminated"]) > 200:
            lines.append(f"| … {len(report['contaminated']) - 200} more in the JSON report | | | | |")
    return "\n".join(lines) + "\n"


__all__ = ["curate", "resolve_cfg", "DEFAULT_CFG", "LABEL_RULES", "RULE_LISTS"]
