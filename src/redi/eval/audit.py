"""Scoring audit: every benchmark gold checked both ways through the product's scorer.

For each problem of each benchmark (golds as :func:`redi.eval.benchmarks.load_benchmark` reads
them from the file), responses are written in the Open-R1 format
(``<think>…</think> Therefore, the final answer is: $\\boxed{R}$. I hope it is correct``) and scored
by :func:`redi.eval.score.score_generations` - the same :func:`redi.verify.check_answer` that labels
corpus traces under ``label_rule: recomputed`` - so the audit covers both uses.

Kinds (``expect`` True = must score correct, False = must score wrong):

(a) ``as_written``: ``R`` is the gold string *as written in the file* (first element of a list),
    only its surrounding whitespace and unescaped ``$`` delimiters removed (``\\$`` kept).
(b) equivalents, where the gold has the feature: ``dfrac`` (``\\frac`` <-> ``\\dfrac``),
    ``left_right`` (``\\left(``/``\\right)`` <-> ``(``/``)``), ``decimal`` (an exact terminating
    fraction written as a decimal), ``x_equals`` (``x = v`` for a single value), ``thousands``
    (``12,345`` for an integer >= 1000), ``text_number`` (``\\text{v}`` around a number),
    ``degrees`` (``v^{\\circ}`` <-> ``v^\\circ`` / bare ``v`` where the gold has degrees).
(c) near misses: ``x10``, ``x100``, ``div100``, ``plus1``, ``neg`` of a single numeric value
    (written in the gold's notation: integer, decimal, fraction, scientific); ``drop_element``
    (one element removed from a tuple/set/interval-free list of several values) and
    ``bound_type`` (one interval bracket flipped between open and closed).

Written numbers (docs/scoring-audit.md, "Written numbers"): (b) ``e_notation``,
``e_notation_plain`` (unboxed, :func:`response_plain`), ``unicode_minus``,
``unicode_minus_plain``, ``written_precision``; (c) ``int_neighbour`` (N +- 1 written with its
units digit), ``last_digit`` (a seven-digit approximation one unit off), ``wrong_exponent``,
``euler_reading`` (an e-notation gold's old reading as ``M*e*k``).

Entry point: ``python -m redi.eval.audit [--json out.json] [--md out.md] [--workers N]``.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

EQUIVALENT_KINDS = (
    "dfrac",
    "left_right",
    "decimal",
    "x_equals",
    "thousands",
    "text_number",
    "degrees",
    "e_notation",
    "e_notation_plain",
    "unicode_minus",
    "unicode_minus_plain",
    "written_precision",
)
NEAR_MISS_KINDS = (
    "x10",
    "x100",
    "div100",
    "plus1",
    "neg",
    "drop_element",
    "bound_type",
    "int_neighbour",
    "last_digit",
    "wrong_exponent",
    "euler_reading",
)
#: Kinds whose response is written without a box (the sentence forms of :func:`response_plain`).
PLAIN_KINDS = ("e_notation_plain", "unicode_minus_plain")
#: Minus look-alikes an answer may use (U+2212 minus sign, U+FE63 small hyphen-minus, U+FF0D
#: fullwidth hyphen-minus; U+2013 en dash only where it stands for a unary minus).
MINUS_SIGNS = ("\u2212", "\ufe63", "\uff0d")
EN_DASH = "\u2013"
KINDS = ("as_written",) + EQUIVALENT_KINDS + NEAR_MISS_KINDS
BENCHMARK_FILES = {
    "aime": "aime.json",
    "amc": "amc.json",
    "math": "math.json",
    "minerva": "minerva.json",
    "olympiad_bench": "olympiad_bench.json",
}

_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_INT = r"-?\d+"
_DEC = r"-?\d*\.\d+"
_RE_INT = re.compile(rf"^{_INT}$")
_RE_DEC = re.compile(rf"^{_DEC}$")
_RE_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")
_RE_SLASH = re.compile(r"^(-?\d+)/(\d+)$")
_RE_SCI = re.compile(r"^(-?\d+(?:\.\d+)?)\s*\\times\s*10\^\{?(-?\d+)\}?$")
_RE_ENOT = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]([-+]?\d+)$")
_RE_POW10 = re.compile(r"^10\^\{?(-?\d+)\}?$")
_RE_DEG = re.compile(r"\^\s*\{?\\circ\}?")
_RE_INTERVAL = re.compile(r"^[\[(][^\[\]()]*,[^\[\]()]*[\])]$")


def as_written(answer) -> str:
    """The file's gold (first list element) with whitespace and unescaped ``$`` removed."""
    raw = answer[0] if isinstance(answer, (list, tuple)) else answer
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    return _UNESCAPED_DOLLAR.sub("", str(raw)).strip()


def response(expr: str) -> str:
    return (
        "<think>\nok\n</think>\n\n"
        f"Therefore, the final answer is: $\\boxed{{{expr}}}$. I hope it is correct"
    )


def response_plain(expr: str, form: int = 0) -> str:
    """An unboxed response ending in ``expr``: ``form`` 0 = ``Therefore, the final answer is:
    R``, 1 = ``The answer is R.`` (Math-Verify's anchored plain-text extraction)."""
    tail = f"Therefore, the final answer is: {expr}" if form == 0 else f"The answer is {expr}."
    return "<think>\nok\n</think>\n\n" + tail


# ----------------------------------------------------------------------------- numbers


def _fmt_dec(v: Fraction) -> str | None:
    """Exact decimal string of ``v`` if it terminates, else None."""
    d = v.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return None
    sign = "-" if v < 0 else ""
    v = abs(v)
    q, r = divmod(v.numerator, v.denominator)
    if r == 0:
        return f"{sign}{q}"
    digits = []
    while r and len(digits) < 60:
        r *= 10
        digits.append(str(r // v.denominator))
        r %= v.denominator
    return f"{sign}{q}." + "".join(digits)


def _fmt_frac(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def numeric(gold: str):
    """(kind, value) of a gold that is one plain number, else None.

    kind: ``int`` | ``dec`` | ``frac`` | ``sci`` (value a Fraction; for ``sci`` a pair
    (mantissa Fraction, exponent int))."""
    g = gold.strip()
    if _RE_INT.match(g):
        return "int", Fraction(int(g))
    if _RE_DEC.match(g):
        return "dec", Fraction(g)
    m = _RE_FRAC.match(g) or _RE_SLASH.match(g.replace(" ", ""))
    if m:
        if len(m.groups()) == 3:
            sign, a, b = m.groups()
            v = Fraction(int(a), int(b)) * (-1 if sign else 1)
        else:
            v = Fraction(int(m.group(1)), int(m.group(2)))
        if v.denominator != 1 and int(m.groups()[-1]) != 0:
            return "frac", v
        return None
    m = _RE_SCI.match(g) or _RE_ENOT.match(g)
    if m:
        return "sci", (Fraction(m.group(1)), int(m.group(2)))
    m = _RE_POW10.match(g)
    if m:
        return "sci", (Fraction(1), int(m.group(1)))
    return None


def _fmt_sci(mant: Fraction, exp: int) -> str:
    # keep the mantissa in [1, 10) where possible, like the golds
    while mant != 0 and abs(mant) >= 10:
        mant /= 10
        exp += 1
    while mant != 0 and abs(mant) < 1:
        mant *= 10
        exp -= 1
    m = _fmt_dec(mant) or _fmt_frac(mant)
    return f"{m} \\times 10^{{{exp}}}"


def _numeric_misses(kind: str, val) -> dict[str, str]:
    if kind == "sci":
        mant, exp = val
        # "+1" on the mantissa: the gold is given to a few significant digits, so adding 1 to
        # a value of 1e35 is inside any relative tolerance and not a near miss
        out = {
            "x10": _fmt_sci(mant, exp + 1),
            "x100": _fmt_sci(mant, exp + 2),
            "div100": _fmt_sci(mant, exp - 2),
            "plus1": _fmt_sci(mant + 1, exp),
        }
        if mant != 0:
            out["neg"] = _fmt_sci(-mant, exp)
        return out
    fmt = {"int": lambda v: _fmt_frac(v), "dec": lambda v: _fmt_dec(v) or _fmt_frac(v), "frac": _fmt_frac}[kind]
    out = {"plus1": fmt(val + 1)}
    if val != 0:  # 0 x 10 is 0: no near miss
        out["x10"] = fmt(val * 10)
        out["x100"] = fmt(val * 100)
        out["div100"] = _fmt_dec(val / 100) if kind != "frac" else _fmt_frac(val / 100)
        out["neg"] = fmt(-val)
    return out


def _sci_parts(v: Fraction) -> tuple[Fraction, int]:
    """(mantissa, exponent) with ``1 <= |mantissa| < 10`` of a non-zero value."""
    exp = 0
    mant = v
    while abs(mant) >= 10:
        mant /= 10
        exp += 1
    while abs(mant) < 1:
        mant *= 10
        exp -= 1
    return mant, exp


def _e_form(mant: Fraction, exp: int) -> str | None:
    """``M e k`` (e-notation) of ``mant x 10^exp`` with the mantissa written exactly, or None
    when the mantissa does not terminate."""
    m = _fmt_dec(mant)
    return None if m is None else f"{m}e{exp}"


def _round_sig(v: Fraction, sig: int) -> tuple[Fraction, Fraction]:
    """(``v`` rounded half-up to ``sig`` significant digits, one unit of its last digit)."""
    mant, exp = _sci_parts(v)
    unit = Fraction(10) ** (exp - sig + 1)
    r = Fraction(round(abs(v) / unit)) * unit  # round-half-even on exact ties: both are honest
    return (r if v >= 0 else -r), unit


def _fmt_units(x: Fraction, unit: Fraction) -> str:
    """``x`` (a multiple of ``unit``, a power of ten) as ``d.ddd \\times 10^{k}`` with every digit
    down to ``unit`` written, trailing zeros included: its written precision is ``unit``."""
    digits = str(abs(x) // unit)
    exp = -(len(str(unit.denominator)) - 1) if unit < 1 else len(str(unit.numerator)) - 1
    sign = "-" if x < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:] or '0'} \\times 10^{{{exp + len(digits) - 1}}}"


def _plain_number(kind: str, val) -> str | None:
    """A numeric gold as plain text (no LaTeX), for the unboxed forms; None for fractions."""
    if kind == "int":
        return str(val.numerator)
    if kind == "dec":
        return _fmt_dec(val)
    if kind == "sci":
        return _e_form(*val)
    return None


def _value(kind: str, val) -> Fraction:
    if kind == "sci":
        mant, exp = val
        return mant * Fraction(10) ** exp
    return val


#: Significant digits of a properly rounded approximation: half a unit of the 7th digit is at
#: most 5e-7 relative, inside the scorer's relative tolerance (``redi.verify.REL_TOL`` = 1e-6).
APPROX_DIGITS = 7


def _precision_cases(g: str, kind: str, val) -> list[tuple[str, bool, str]]:
    """Written-precision floats (must pass) and their neighbours (must fail): (b)
    ``written_precision``, (c) ``int_neighbour``, ``last_digit``, ``wrong_exponent``,
    ``euler_reading``."""
    out: list[tuple[str, bool, str]] = []
    v = _value(kind, val)
    if kind == "int":
        n = val.numerator
        out.append(("written_precision", True, f"{n}.0"))
        # a float that claims the units digit must be the integer: its neighbours, written
        # with a decimal point and, for large values, in scientific notation with all digits
        for nb in (n + 1, n - 1):
            out.append(("int_neighbour", False, f"{nb}.0"))
            if abs(nb) >= 10**6:  # every digit written (trailing zeros too): units precision
                digits = str(abs(nb))
                mant = f"{'-' if nb < 0 else ''}{digits[0]}.{digits[1:]}"
                out.append(("int_neighbour", False, f"{mant} \\times 10^{{{len(digits) - 1}}}"))
    elif kind == "dec":
        out.append(("written_precision", True, f"{g}0"))
    elif kind == "sci":
        mant, exp = val
        m = _fmt_dec(mant)
        if m is not None:
            m0 = m + ("0" if "." in m else ".0")
            out.append(("written_precision", True, f"{m0} \\times 10^{{{exp}}}"))
    if v != 0:
        mant, exp = _sci_parts(v)
        r, unit = _round_sig(v, APPROX_DIGITS)
        if r != v:  # a real approximation: properly rounded passes, one unit off fails
            out.append(("written_precision", True, _fmt_units(r, unit)))
            out.append(("last_digit", False, _fmt_units(r + unit if r >= v else r - unit, unit)))
        if kind != "frac" or _fmt_dec(mant) is not None:
            for d in (1, -1):
                e = _e_form(mant, exp + d)
                if e:
                    out.append(("wrong_exponent", False, e))
    return out


def _euler_value(g: str) -> str | None:
    """An e-notation gold read the other way (``M e k`` as ``M * e * k``, ``M e-k`` as
    ``M*e - k``), written to 7 significant digits: the value the old reading compared with."""
    m = _RE_ENOT.match(g.strip())
    if not m:
        return None
    import math

    mant, k = m.group(1), m.group(2)
    x = float(mant) * math.e * int(k) if not k.startswith(("-", "+")) else float(mant) * math.e + int(k)
    return f"{x:.7g}"


def _minus_variants(g: str) -> list[str]:
    """``g`` with its minus signs written as look-alikes: every ``-`` as each of
    :data:`MINUS_SIGNS`, and every *unary* ``-`` (at the start, after an opening bracket, a
    comma, ``=`` or ``^``) as an en dash."""
    if "-" not in g:
        return []
    out = [g.replace("-", c) for c in MINUS_SIGNS]
    dashed = re.sub(r"(^|[(\[{,=^]\s*)-", lambda m: m.group(1) + EN_DASH, g)
    if dashed != g:
        out.append(dashed)
    return out


# ----------------------------------------------------------------------------- structure


def _split_top(s: str) -> list[str]:
    """Split on commas at brace/bracket depth 0 (a ``\\{``/``\\}`` set brace counts as depth)."""
    parts, depth, cur = [], 0, []
    i = 0
    while i < len(s):
        c = s[i]
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _drop_element(g: str) -> str | None:
    s = g.strip()
    if _RE_INTERVAL.match(s) or "\\cup" in s or "\\infty" in s:
        return None  # an interval has no element to drop (see bound_type)
    for lo, hi in (("\\left(", "\\right)"), ("\\left[", "\\right]"), ("\\{", "\\}"), ("(", ")"), ("[", "]")):
        if s.startswith(lo) and s.endswith(hi):
            inner = s[len(lo) : -len(hi)]
            parts = _split_top(inner)
            if len(parts) >= 3 and len(_split_top(s)) == 1:  # one tuple/set of >= 3 elements
                return lo + ",".join(parts[:-1]) + hi
            return None
    parts = _split_top(s)
    if len(parts) >= 2 and all(p.strip() for p in parts) and "=" not in s:
        return ",".join(parts[:-1]).strip()
    return None


def _bound_type(g: str) -> str | None:
    s = g.strip()
    s0 = s.replace("\\left", "").replace("\\right", "")
    if not _RE_INTERVAL.match(s0) or "\\cup" in s0:
        return None
    if s0.startswith("(") and "\\infty" in s0.split(",")[0]:
        # (-\infty, b?  flip the right bound
        return s0[:-1] + ("]" if s0.endswith(")") else ")")
    return ("[" if s0.startswith("(") else "(") + s0[1:]


def _single_value(g: str) -> bool:
    return (
        len(_split_top(g)) == 1
        and "=" not in g
        and "\\text" not in g
        and not re.search(r"\\(?:le|ge|ne|approx|sim)", g)
        and "[" not in g
        and "]" not in g
        and "<" not in g
        and ">" not in g
        and "\\in" not in g
        and "\\mathrm" not in g
        and "\\pm" not in g
        and not re.search(r"\\(?:cup|cap|infty)", g)
        and not g.strip().startswith(("(", "[", "\\{", "\\left"))
    )


def variants(gold: str) -> list[tuple[str, bool, str]]:
    """``(kind, expect_correct, boxed_expression)`` rewrites of a bare gold (see module doc)."""
    g = gold.strip()
    out: list[tuple[str, bool, str]] = []
    if "\\dfrac" in g:
        out.append(("dfrac", True, g.replace("\\dfrac", "\\frac")))
    elif "\\frac" in g:
        out.append(("dfrac", True, re.sub(r"\\frac(?=[{\s\d])", r"\\dfrac", g)))
    if "\\left" in g:
        out.append(("left_right", True, re.sub(r"\\(?:left|right)(?=[()\[\]|.]|\\[{}])", "", g)))
    elif "(" in g and ")" in g:
        out.append(("left_right", True, g.replace("(", "\\left(").replace(")", "\\right)")))
    num = numeric(g)
    if num and num[0] == "frac":
        dec = _fmt_dec(num[1])
        if dec is not None:
            out.append(("decimal", True, dec))
    if _single_value(g) and not _RE_DEG.search(g):
        out.append(("x_equals", True, f"x = {g}"))
    if num and num[0] == "int" and abs(num[1]) >= 1000:
        out.append(("thousands", True, f"{int(num[1]):,}"))
    if num and num[0] in ("int", "dec"):
        out.append(("text_number", True, f"\\text{{{g}}}"))
    if _RE_DEG.search(g):
        bare = _RE_DEG.sub("", g).strip()
        alt = _RE_DEG.sub(r"^\\circ", g) if "^{\\circ}" in g else _RE_DEG.sub(r"^{\\circ}", g)
        out.append(("degrees", True, alt))
        out.append(("degrees", True, bare))
    for alt in _minus_variants(g):
        out.append(("unicode_minus", True, alt))
    if num:
        e_alt = _e_form(*_sci_parts(_value(*num))) if _value(*num) != 0 else None
        if num[0] == "sci" and _RE_ENOT.match(g):  # an e-notation gold: the LaTeX form
            mant, exp = num[1]
            e_alt = f"{_fmt_dec(mant) or _fmt_frac(mant)} \\times 10^{{{exp}}}"
        if e_alt:
            out.append(("e_notation", True, e_alt))
        plain = _plain_number(*num)
        if plain:
            if num[0] != "sci" and e_alt:
                out.append(("e_notation_plain", True, e_alt))
            elif num[0] == "sci":
                out.append(("e_notation_plain", True, plain))
            if plain.startswith("-"):
                for c in MINUS_SIGNS + (EN_DASH,):
                    out.append(("unicode_minus_plain", True, c + plain[1:]))
        out.extend(_precision_cases(g, *num))
        euler = _euler_value(g)
        if euler:
            out.append(("euler_reading", False, euler))
        for kind, expr in _numeric_misses(*num).items():
            out.append((kind, False, expr))
    elif _single_value(g) and not _RE_DEG.search(g) and re.search(r"[\d\\a-zA-Z]", g):
        out.append(("x10", False, f"10 \\left({g}\\right)"))
        out.append(("plus1", False, f"{g} + 1"))
        out.append(("neg", False, f"-\\left({g}\\right)"))
    dropped = _drop_element(g)
    if dropped:
        out.append(("drop_element", False, dropped))
    flipped = _bound_type(g)
    if flipped:
        out.append(("bound_type", False, flipped))
    return out


# ----------------------------------------------------------------------------- run


def build_items(bench_dir: str | Path, names=None):
    """Problems and generation records of every audit case; ``cases[k] = (benchmark, row,
    kind, expect, response_expr, gold)`` for the generation with ``sample_index == k``."""
    from redi.eval.benchmarks import load_benchmark

    names = list(names or BENCHMARK_FILES)
    problems, gens, cases = [], [], []
    for name in names:
        path = Path(bench_dir) / BENCHMARK_FILES[name]
        raw_rows = json.loads(path.read_text(encoding="utf-8"))
        for p, raw in zip(load_benchmark(path), raw_rows):
            problems.append((name, p))
            todo = [("as_written", True, as_written(raw["answer"]))] + variants(p.gold)
            for kind, expect, expr in todo:
                texts = [response_plain(expr, 0), response_plain(expr, 1)] if kind in PLAIN_KINDS else [response(expr)]
                for text in texts:
                    cases.append((name, p.index, kind, expect, expr, p.gold))
                    gens.append({"bench": name, "problem": p, "text": text})
    return problems, gens, cases


def run_audit(bench_dir: str | Path, *, workers: int = 2, timeout_s: float = 10.0, names=None) -> dict:
    """Score every case; returns ``{"counts": {bench: {kind: [passed, total]}}, "misses": [...]}``."""
    from redi.eval.score import verify_against_golds

    problems, gens, cases = build_items(bench_dir, names)
    items = [(g["problem"].golds, g["text"].split("</think>", 1)[1]) for g in gens]
    verdicts = verify_against_golds(items, timeout_s=timeout_s, workers=workers)
    counts: dict = {}
    misses = []
    for (bench, row, kind, expect, expr, gold), (correct, status, extracted) in zip(cases, verdicts):
        c = counts.setdefault(bench, {}).setdefault(kind, [0, 0])
        c[1] += 1
        if bool(correct) == expect:
            c[0] += 1
        else:
            misses.append(
                {
                    "benchmark": bench,
                    "row": row,
                    "kind": kind,
                    "expect": expect,
                    "gold": gold,
                    "response": expr,
                    "status": status,
                    "extracted": extracted,
                }
            )
    return {"n_problems": len(problems), "n_cases": len(cases), "counts": counts, "misses": misses}


def totals(result: dict) -> dict[str, list[int]]:
    """``{"as_written"|"equivalents"|"near_misses": [passed, total]}`` over all benchmarks."""
    groups = {"as_written": ("as_written",), "equivalents": EQUIVALENT_KINDS, "near_misses": NEAR_MISS_KINDS}
    out = {}
    for gname, kinds in groups.items():
        p = t = 0
        for per in result["counts"].values():
            for k in kinds:
                if k in per:
                    p += per[k][0]
                    t += per[k][1]
        out[gname] = [p, t]
    return out


def table_markdown(result: dict) -> str:
    """Passed/total per benchmark (rows) and kind (columns)."""
    benches = list(result["counts"])
    kinds = [k for k in KINDS if any(k in result["counts"][b] for b in benches)]
    lines = ["| benchmark | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for b in benches + ["all"]:
        cells = []
        for k in kinds:
            if b == "all":
                p = sum(result["counts"][x].get(k, [0, 0])[0] for x in benches)
                t = sum(result["counts"][x].get(k, [0, 0])[1] for x in benches)
            else:
                p, t = result["counts"][b].get(k, [0, 0])
            cells.append(f"{p}/{t}" if t else "-")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks", default=str(Path(__file__).resolve().parents[3] / "data" / "benchmarks"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="write the full result (counts and every miss) here")
    args = ap.parse_args(argv)
    result = run_audit(args.benchmarks, workers=args.workers)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(table_markdown(result))
    print(json.dumps(totals(result)))
    for m in result["misses"]:
        print(f"MISS {m['benchmark']}[{m['row']}] {m['kind']} expect={m['expect']} gold={m['gold']!r} "
              f"resp={m['response']!r} status={m['status']} extracted={m['extracted']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
