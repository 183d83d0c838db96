"""Embedded synthetic teacher corpus (offline default and test data).

Writes a small corpus in the OpenR1-Math-Raw schema: short multi-step integer arithmetic
problems with R1-style traces (``<think> ... </think>`` then the Open-R1 final-answer line).
Each problem has 1-4 teacher generations; a generation is correct with a per-problem
probability around ``p_correct``; incorrect generations contain one systematic, visible
mistake (dropped carry, borrow error, operator precedence, sign slip, off-by-one, percent
scale) that carries through to a wrong boxed answer. Labels: ``math_verify_*`` are the truth;
the "judge" label ``llama_verification`` disagrees with the truth at rate
``judge_disagreement``. The corpus also contains invalid problems (``problem_is_valid`` "no"),
an excluded source (``cn_k12``), truncated generations (``finish_reasons`` "length", no
``</think>``) and a few malformed rows, so every curation rule has something to do.

Everything is a deterministic function of ``cfg`` (``random.Random(seed)``); the held-out test
problems never occur in the training corpus.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from redi.files import write_parquet_atomic, write_text_atomic

log = logging.getLogger(__name__)

DEFAULT_SOURCES = ["olympiads", "aops_forum", "amc_aime", "number_theory", "inequalities", "cn_contest"]
EXCLUDED_SOURCE = "cn_k12"

FINAL_LINE = "Therefore, the final answer is: $\\boxed{{{ans}}}$. I hope it is correct"


@dataclass
class SynthConfig:
    """The synthetic teacher corpus (``config.corpus.synthetic``): every knob and its default.

    Rates are probabilities per row or per generation. ``tests/test_data_config.py`` checks that
    ``config/schema.yaml`` states the same defaults.
    """

    seed: int = 0  # random.Random seed of the train rows (the test set uses f"{seed}-test")
    n_train_problems: int = 3000  # rows in the corpus (malformed rows included)
    n_test_problems: int = 200  # held-out problems (results/data/corpus/test.json), disjoint from train
    min_generations: int = 1  # generations per row, drawn uniformly in [min, max]
    max_generations: int = 4
    p_correct: float = 0.55  # mean probability that a generation is correct
    p_correct_spread: float = 0.35  # per-problem probability ~ U(p - spread, p + spread), clipped
    judge_disagreement: float = 0.03  # the Llama judge label flips the truth this often
    invalid_fraction: float = 0.02  # rows with problem_is_valid "no"
    excluded_source_fraction: float = 0.03  # rows from cn_k12 (excluded by curation)
    truncated_fraction: float = 0.02  # generations cut off before </think> (finish_reason "length")
    malformed_rows: int = 6  # rows broken on purpose (normalisation must reject and name them)
    sources: list[str] = field(default_factory=lambda: list(DEFAULT_SOURCES))  # row sources

    @classmethod
    def from_dict(cls, cfg: dict | SynthConfig | None) -> SynthConfig:
        """Defaults filled (``None`` = default), unknown keys rejected naming the key."""
        if isinstance(cfg, SynthConfig):
            return cfg
        values = dict(cfg or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown synthetic corpus key(s) {unknown}; known keys: {sorted(known)}")
        out = cls(**{k: v for k, v in values.items() if v is not None})
        if not 1 <= out.min_generations <= out.max_generations:
            raise ValueError("need 1 <= min_generations <= max_generations")
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def fmt(v) -> str:
    """Answer formatting: integers plainly, non-integer rationals as \\frac{p}{q}."""
    v = Fraction(v)
    if v.denominator == 1:
        return str(v.numerator)
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


# --------------------------------------------------------------------------- mistakes


def add_no_carry(a: int, b: int) -> int:
    """Digit-wise addition that drops every carry (37 + 45 -> 72)."""
    out, place = 0, 1
    while a or b:
        out += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return out


def sub_no_borrow(a: int, b: int) -> int:
    """Smaller-from-larger digit subtraction (82 - 18 -> 76), a classic borrow error."""
    out, place = 0, 1
    while a or b:
        out += abs(a % 10 - b % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return out


# --------------------------------------------------------------------------- problem families


@dataclass
class Problem:
    text: str
    answer: Fraction
    family: str
    problem_type: str
    # correct reasoning lines, and a list of (mistake name, reasoning lines, wrong answer)
    steps: list[str]
    mistakes: list[tuple[str, list[str], Fraction]]


def _addsub(r: random.Random) -> Problem:
    a, b = r.randint(2, 9), r.randint(2, 9)
    if r.random() < 0.5:
        c = r.randint(2, 9)
        s = a + b
        ans = s - c
        text = f"Compute {a} + {b} - {c}."
        steps = ["Work from left to right.", f"{a} + {b} = {s}.", f"{s} - {c} = {ans}."]
        mistakes = []
        if add_no_carry(a, b) != s:
            s2 = add_no_carry(a, b)
            mistakes.append(
                ("dropped_carry", [steps[0], f"{a} + {b} = {s2}.", f"{s2} - {c} = {s2 - c}."], s2 - c)
            )
        if sub_no_borrow(s, c) != s - c:
            d2 = sub_no_borrow(s, c)
            mistakes.append(("borrow_error", [steps[0], steps[1], f"{s} - {c} = {d2}."], d2))
        mistakes.append(("sign_slip", [steps[0], steps[1], f"{s} + {c} = {s + c}."], s + c))
    else:
        a, b = max(a, b), min(a, b)
        c = r.randint(2, 9)
        d = a - b
        ans = d + c
        text = f"Compute {a} - {b} + {c}."
        steps = ["Work from left to right.", f"{a} - {b} = {d}.", f"{d} + {c} = {ans}."]
        mistakes = []
        if sub_no_borrow(a, b) != d:
            d2 = sub_no_borrow(a, b)
            mistakes.append(
                ("borrow_error", [steps[0], f"{a} - {b} = {d2}.", f"{d2} + {c} = {d2 + c}."], d2 + c)
            )
        if add_no_carry(d, c) != ans:
            s2 = add_no_carry(d, c)
            mistakes.append(("dropped_carry", [steps[0], steps[1], f"{d} + {c} = {s2}."], s2))
        mistakes.append(
            (
                "sign_slip",
                [
                    f"{a} - {b} + {c} = {a} - ({b} + {c}).",
                    f"{b} + {c} = {b + c}.",
                    f"{a} - {b + c} = {a - b - c}.",
                ],
                a - b - c,
            )
        )
    return Problem(text, Fraction(ans), "addsub", "Algebra", steps, mistakes)


def _precedence(r: random.Random) -> Problem:
    b, c = r.randint(2, 9), r.randint(2, 9)
    p = b * c
    if r.random() < 0.5:
        a = r.randint(2, 9)
        ans = a + p
        text = f"Compute {a} + {b} * {c}."
        steps = ["Multiplication comes first.", f"{b} * {c} = {p}.", f"{a} + {p} = {ans}."]
        mistakes = [
            ("precedence", [f"{a} + {b} = {a + b}.", f"{a + b} * {c} = {(a + b) * c}."], (a + b) * c),
            ("times_table", [steps[0], f"{b} * {c} = {p + c}.", f"{a} + {p + c} = {a + p + c}."], a + p + c),
        ]
        if add_no_carry(a, p) != ans:
            mistakes.append(
                (
                    "dropped_carry",
                    [steps[0], steps[1], f"{a} + {p} = {add_no_carry(a, p)}."],
                    add_no_carry(a, p),
                )
            )
    else:
        a = r.randint(p + 1, p + 9)
        ans = a - p
        text = f"Compute {a} - {b} * {c}."
        steps = ["Multiplication comes first.", f"{b} * {c} = {p}.", f"{a} - {p} = {ans}."]
        mistakes = [
            ("precedence", [f"{a} - {b} = {a - b}.", f"{a - b} * {c} = {(a - b) * c}."], (a - b) * c),
            ("times_table", [steps[0], f"{b} * {c} = {p - b}.", f"{a} - {p - b} = {a - p + b}."], a - p + b),
        ]
        if sub_no_borrow(a, p) != ans:
            mistakes.append(
                (
                    "borrow_error",
                    [steps[0], steps[1], f"{a} - {p} = {sub_no_borrow(a, p)}."],
                    sub_no_borrow(a, p),
                )
            )
    return Problem(text, Fraction(ans), "precedence", "Algebra", steps, mistakes)


def _paren(r: random.Random) -> Problem:
    a, b, c = r.randint(2, 9), r.randint(2, 9), r.randint(2, 5)
    s = a + b
    ans = s * c
    text = f"Compute ({a} + {b}) * {c}."
    steps = ["Parentheses first.", f"{a} + {b} = {s}.", f"{s} * {c} = {ans}."]
    mistakes = [
        ("precedence", [f"{b} * {c} = {b * c}.", f"{a} + {b * c} = {a + b * c}."], a + b * c),
        ("off_by_one", [steps[0], steps[1], f"{s} * {c} = {ans + 1}."], ans + 1),
    ]
    if add_no_carry(a, b) != s:
        s2 = add_no_carry(a, b)
        mistakes.append(
            ("dropped_carry", [steps[0], f"{a} + {b} = {s2}.", f"{s2} * {c} = {s2 * c}."], s2 * c)
        )
    return Problem(text, Fraction(ans), "paren", "Algebra", steps, mistakes)


def _linear(r: random.Random) -> Problem:
    a, x, b = r.randint(2, 5), r.randint(1, 9), r.randint(1, 9)
    if r.random() < 0.5:
        c = a * x + b
        text = f"Solve for x: {a}x + {b} = {c}."
        steps = [
            f"Subtract {b} from both sides: {a}x = {c} - {b} = {c - b}.",
            f"Divide by {a}: x = {c - b} / {a} = {x}.",
        ]
        wrong = Fraction(c + b, a)
        mistakes = [
            (
                "sign_slip",
                [
                    f"Move {b} to the right: {a}x = {c} + {b} = {c + b}.",
                    f"Divide by {a}: x = {c + b} / {a} = {fmt(wrong)}.",
                ],
                wrong,
            ),
        ]
        if sub_no_borrow(c, b) != c - b:
            d2 = sub_no_borrow(c, b)
            w2 = Fraction(d2, a)
            mistakes.append(
                (
                    "borrow_error",
                    [
                        f"Subtract {b} from both sides: {a}x = {c} - {b} = {d2}.",
                        f"Divide by {a}: x = {d2} / {a} = {fmt(w2)}.",
                    ],
                    w2,
                )
            )
    else:
        c = a * x - b
        if c <= 0:
            return _linear(r)
        text = f"Solve for x: {a}x - {b} = {c}."
        steps = [
            f"Add {b} to both sides: {a}x = {c} + {b} = {c + b}.",
            f"Divide by {a}: x = {c + b} / {a} = {x}.",
        ]
        wrong = Fraction(c - b, a)
        mistakes = [
            (
                "sign_slip",
                [
                    f"Move {b} to the right: {a}x = {c} - {b} = {c - b}.",
                    f"Divide by {a}: x = {c - b} / {a} = {fmt(wrong)}.",
                ],
                wrong,
            ),
        ]
        if add_no_carry(c, b) != c + b:
            s2 = add_no_carry(c, b)
            w2 = Fraction(s2, a)
            mistakes.append(
                (
                    "dropped_carry",
                    [
                        f"Add {b} to both sides: {a}x = {c} + {b} = {s2}.",
                        f"Divide by {a}: x = {s2} / {a} = {fmt(w2)}.",
                    ],
                    w2,
                )
            )
    mistakes.append(
        ("off_by_one", [steps[0], steps[1][: steps[1].rfind("=")] + f"= {x + 1}."], Fraction(x + 1))
    )
    return Problem(text, Fraction(x), "linear", "Algebra", steps, mistakes)


_PERCENTS = [10, 20, 50]


def _percent(r: random.Random) -> Problem:
    p = r.choice(_PERCENTS)
    n = 10 * r.randint(1, 9)
    prod = n * p
    ans = prod // 100
    text = f"What is {p}% of {n}?"
    steps = [f"{p}% of {n} is {n} * {p} / 100.", f"{n} * {p} = {prod}.", f"{prod} / 100 = {ans}."]
    mistakes = [
        (
            "percent_scale",
            [
                f"{p}% of {n} is {n} * {p} / 10.",
                f"{n} * {p} = {prod}.",
                f"{prod} / 10 = {fmt(Fraction(prod, 10))}.",
            ],
            Fraction(prod, 10),
        ),
        ("off_by_one", [steps[0], steps[1], f"{prod} / 100 = {ans + 1}."], Fraction(ans + 1)),
    ]
    return Problem(text, Fraction(ans), "percent", "Algebra", steps, mistakes)


_NAMES = [("Tom", "He"), ("Anna", "She"), ("Ben", "He"), ("Maya", "She"), ("Leo", "He"), ("Zoe", "She")]
_ITEMS = ["apples", "marbles", "stickers", "coins", "books", "cards"]


def _word(r: random.Random) -> Problem:
    name, _ = r.choice(_NAMES)
    item = r.choice(_ITEMS)
    a = r.randint(10, 18)
    b = r.randint(2, 9)
    c = r.randint(2, 9)
    d = a - b
    ans = d + c
    # Kept under ~10 words so every word 8-gram contains all three numbers: unrelated problems
    # of this template then (almost) never share an 8-gram, and decontamination stays meaningful.
    text = f"{name} has {a} {item}, gives {b}, gets {c}. How many?"
    steps = [f"After giving: {a} - {b} = {d}.", f"After getting: {d} + {c} = {ans}."]
    mistakes = [
        (
            "sign_slip",
            [f"After giving: {a} + {b} = {a + b}.", f"After getting: {a + b} + {c} = {a + b + c}."],
            a + b + c,
        ),
        ("off_by_one", [steps[0], f"After getting: {d} + {c} = {ans - 1}."], ans - 1),
    ]
    if sub_no_borrow(a, b) != d:
        d2 = sub_no_borrow(a, b)
        mistakes.append(
            (
                "borrow_error",
                [f"After giving: {a} - {b} = {d2}.", f"After getting: {d2} + {c} = {d2 + c}."],
                d2 + c,
            )
        )
    if add_no_carry(d, c) != ans:
        mistakes.append(
            (
                "dropped_carry",
                [steps[0], f"After getting: {d} + {c} = {add_no_carry(d, c)}."],
                add_no_carry(d, c),
            )
        )
    return Problem(
        text, Fraction(ans), "word", "Algebra", steps, [(m, s, Fraction(w)) for m, s, w in mistakes]
    )


def _single(r: random.Random) -> Problem:
    """One operation: the easy end of the mix, where a small student first gets answers right."""
    op = r.choice("+-*")
    if op == "*":
        a, b = r.randint(2, 9), r.randint(2, 9)
        ans = a * b
        mistakes = [
            ("times_table", [f"{a} * {b} = {ans + a}."], ans + a),
            ("off_by_one", [f"{a} * {b} = {ans + 1}."], ans + 1),
        ]
    elif op == "+":
        a, b = r.randint(2, 9), r.randint(2, 9)
        ans = a + b
        mistakes = [("off_by_one", [f"{a} + {b} = {ans + 1}."], ans + 1)]
        if add_no_carry(a, b) != ans:
            mistakes.append(("dropped_carry", [f"{a} + {b} = {add_no_carry(a, b)}."], add_no_carry(a, b)))
    else:
        a = r.randint(10, 18)
        b = r.randint(2, 9)
        ans = a - b
        mistakes = [("sign_slip", [f"{a} - {b} = {a + b}."], a + b)]
        if sub_no_borrow(a, b) != ans:
            mistakes.append(("borrow_error", [f"{a} - {b} = {sub_no_borrow(a, b)}."], sub_no_borrow(a, b)))
    text = f"Compute {a} {op} {b}."
    mistakes = [(m, lines, Fraction(w)) for m, lines, w in mistakes]
    return Problem(text, Fraction(ans), "single", "Algebra", [f"{a} {op} {b} = {ans}."], mistakes)


FAMILIES: list[Callable[[random.Random], Problem]] = [
    _single,
    _single,
    _addsub,
    _precedence,
    _paren,
    _linear,
    _percent,
    _word,
]

_OPENERS = ["", "Let me compute this step by step.\n", "Okay, step by step.\n"]


def _trace(r: random.Random, lines: list[str], ans: Fraction, check: bool) -> str:
    body = r.choice(_OPENERS) + "\n".join(lines)
    if check:
        body += f"\nSo the result is {fmt(ans)}."
    return f"<think>\n{body}\n</think>\n\n" + FINAL_LINE.format(ans=fmt(ans))


def _truncate(r: random.Random, lines: list[str]) -> str:
    body = "\n".join(lines)
    cut = r.randint(max(1, len(body) // 3), max(2, 2 * len(body) // 3))
    return "<think>\n" + body[:cut]


def _generation(r: random.Random, prob: Problem, correct: bool) -> tuple[str, bool]:
    """Returns (text, truly_correct)."""
    if correct:
        return _trace(r, prob.steps, prob.answer, check=r.random() < 0.3), True
    name, lines, wrong = r.choice(prob.mistakes)
    assert wrong != prob.answer, (prob.text, name)
    return _trace(r, lines, wrong, check=r.random() < 0.3), False


def _solution(prob: Problem) -> str:
    return " ".join(prob.steps) + f" The answer is ${fmt(prob.answer)}$."


def _problem(r: random.Random) -> Problem:
    while True:
        prob = r.choice(FAMILIES)(r)
        prob.mistakes = [m for m in prob.mistakes if m[2] != prob.answer]
        if prob.mistakes:
            return prob


def _row(r: random.Random, prob: Problem, cfg: SynthConfig, source: str, valid: bool) -> dict:
    n_gen = r.randint(cfg.min_generations, cfg.max_generations)
    spread = cfg.p_correct_spread
    p = min(0.95, max(0.05, cfg.p_correct + r.uniform(-spread, spread)))
    gens, truth, finish, complete = [], [], [], []
    for _ in range(n_gen):
        if r.random() < cfg.truncated_fraction:
            lines = prob.steps if r.random() < p else r.choice(prob.mistakes)[1]
            gens.append(_truncate(r, lines))
            truth.append(False)
            finish.append("length")
            complete.append(False)
            continue
        text, ok = _generation(r, prob, r.random() < p)
        gens.append(text)
        truth.append(ok)
        finish.append("stop")
        complete.append(True)
    judge = [t if r.random() >= cfg.judge_disagreement else (not t) for t in truth]
    valid_str = r.choice(["yes"] * 8 + ["Yes", " yes "]) if valid else r.choice(["no", "No"])
    return {
        "problem": prob.text,
        "solution": _solution(prob),
        "answer": fmt(prob.answer),
        "problem_type": prob.problem_type,
        "question_type": "math-word-problem",
        "source": source,
        "uuid": str(_uuid.UUID(int=r.getrandbits(128), version=4)),
        "is_reasoning_complete": complete,
        "generations": gens,
        "correctness": {
            "llama_verification": judge,
            "math_verify_answer": list(truth),
            "math_verify_reparsed_answer": list(truth),
        },
        "finish_reasons": finish,
        "correctness_count": int(sum(truth)),
        "problem_is_valid": valid_str,
        "solution_is_valid": "yes" if valid else "no",
    }


_MALFORMED_KINDS = [
    "label_length",
    "none_generations",
    "empty_generations",
    "none_problem",
    "none_answer",
    "none_labels",
]


def _malform(row: dict, kind: str) -> dict:
    row = dict(row)
    if kind == "label_length":
        corr = dict(row["correctness"])
        corr["llama_verification"] = corr["llama_verification"] + [True]
        row["correctness"] = corr
    elif kind == "none_generations":
        row["generations"] = None
    elif kind == "empty_generations":
        row["generations"] = []
        row["correctness"] = {k: [] for k in row["correctness"]}
    elif kind == "none_problem":
        row["problem"] = None
    elif kind == "none_answer":
        row["answer"] = None
    elif kind == "none_labels":
        row["correctness"] = None
    return row


def synthetic_corpus_schema():
    """The embedded synthetic corpus' columns and Arrow types: Open-R1's problem-level fields
    (``solution``, ``problem_type``, ``question_type``, ``uuid``) with the Raw layout's
    ``generations`` and ``correctness`` struct. Not :func:`redi.data.schemas.raw_schema`, the
    layout the teacher stage writes."""
    import pyarrow as pa

    lb = pa.list_(pa.bool_())
    return pa.schema(
        [
            ("problem", pa.string()),
            ("solution", pa.string()),
            ("answer", pa.string()),
            ("problem_type", pa.string()),
            ("question_type", pa.string()),
            ("source", pa.string()),
            ("uuid", pa.string()),
            ("is_reasoning_complete", lb),
            ("generations", pa.list_(pa.string())),
            (
                "correctness",
                pa.struct(
                    [
                        ("llama_verification", lb),
                        ("math_verify_answer", lb),
                        ("math_verify_reparsed_answer", lb),
                    ]
                ),
            ),
            ("finish_reasons", pa.list_(pa.string())),
            ("correctness_count", pa.int64()),
            ("problem_is_valid", pa.string()),
            ("solution_is_valid", pa.string()),
        ]
    )


def generate(cfg: SynthConfig | dict | None = None) -> tuple[list[dict], list[dict]]:
    """Returns (train rows in the Raw schema, test items ``{"problem", "answer"}``)."""
    cfg = SynthConfig.from_dict(cfg)
    r = random.Random(cfg.seed)
    sources = list(cfg.sources) or DEFAULT_SOURCES
    rows: list[dict] = []
    seen: set[str] = set()
    while len(rows) < cfg.n_train_problems:
        prob = _problem(r)
        if prob.text in seen:
            continue
        seen.add(prob.text)
        source = EXCLUDED_SOURCE if r.random() < cfg.excluded_source_fraction else r.choice(sources)
        valid = r.random() >= cfg.invalid_fraction
        rows.append(_row(r, prob, cfg, source, valid))
    # Malformed rows replace rows at deterministic positions (so counts stay n_train_problems).
    n_bad = min(int(cfg.malformed_rows), len(rows))
    for k, pos in enumerate(sorted(r.sample(range(len(rows)), n_bad))):
        rows[pos] = _malform(rows[pos], _MALFORMED_KINDS[k % len(_MALFORMED_KINDS)])

    rt = random.Random(f"{cfg.seed}-test")
    test: list[dict] = []
    test_seen: set[str] = set()
    attempts = 0
    while len(test) < cfg.n_test_problems:
        attempts += 1
        if attempts > 100 * (cfg.n_test_problems + 10):
            raise RuntimeError("could not draw enough held-out problems disjoint from train")
        prob = _problem(rt)
        if prob.text in seen or prob.text in test_seen:
            continue
        test_seen.add(prob.text)
        test.append({"problem": prob.text, "answer": fmt(prob.answer)})
    return rows, test


def write_corpus(cfg: SynthConfig | dict | None, train_path, test_path) -> dict:
    """Write the synthetic corpus (Raw-schema parquet) and the held-out test set (JSON list).

    Returns corpus statistics.
    """
    import pyarrow as pa

    cfg = SynthConfig.from_dict(cfg)
    rows, test = generate(cfg)
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=synthetic_corpus_schema()), train_path)
    write_text_atomic(test_path, json.dumps(test, indent=1) + "\n")
    stats = corpus_stats(rows, test, cfg)
    log.info("corpus: %s", json.dumps(stats, default=str))
    return stats


def corpus_stats(rows: list[dict], test: list[dict], cfg: SynthConfig) -> dict:
    gens = [g for row in rows for g in (row["generations"] or [])]
    truth = [
        t
        for row in rows
        if row["correctness"] is not None and row["generations"]
        for t in row["correctness"]["math_verify_reparsed_answer"]
    ]
    return {
        "cfg": cfg.to_dict(),
        "rows": len(rows),
        "test_problems": len(test),
        "generations": len(gens),
        "avg_generation_chars": round(sum(map(len, gens)) / max(1, len(gens)), 1),
        "correct_fraction": round(sum(truth) / max(1, len(truth)), 4),
        "rows_invalid": sum(1 for row in rows if str(row["problem_is_valid"]).strip().lower() != "yes"),
        "rows_excluded_source": sum(1 for row in rows if row["source"] == EXCLUDED_SOURCE),
    }
