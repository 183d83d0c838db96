"""Bounded Math-Verify: gold-first verification in worker processes with hard per-item limits.

Scoring rules (audit in docs/scoring-audit.md): Math-Verify 0.9 is the engine, and our
decisions around it live in one layer below ("scoring rules"): :func:`normalize_gold` (keeps
LaTeX such as ``\\$18.90``), :func:`answer_expression` (box groups: adjacent boxes are one set
answer, else the last group; mixed numbers are one value; the extraction order),
:func:`numeric_equal` (exact for closed forms without a float; relative :data:`REL_TOL` = 1e-6
when a side holds a float, never wider than half a unit of a written float's last digit;
installed as Math-Verify's ``grader.sympy_numeric_eq``), :func:`read_signs` (minus look-alikes
and e-notation, before any extraction). Every verdict - corpus labelling under
``label_rule: recomputed`` and evaluation scoring alike - comes from :func:`check_answer`'s
``_check_one``.

Model output and corpus text are untrusted. Math-Verify's own timeouts use ``signal.alarm`` and
cannot interrupt C-level work (a huge integer power inside SymPy), so every item here is bounded
from *outside*: work runs in a :class:`pebble.ProcessPool` whose tasks carry a wall-clock
timeout; a task that overruns has its worker process killed and respawned.

Bounding strategy (per-item guarantee with batching)
----------------------------------------------------
Items are sent in batches (``batch_size``, default 32) for throughput. A batch gets the *same*
wall-clock budget as a single item (``timeout_s``). Typical items take a few milliseconds, so a
whole batch normally finishes far inside the budget. If a batch overruns (or its worker dies),
its items are re-run one per task, each with budget ``timeout_s``. Hence every verdict returned
with status ``ok``/``no_answer``/... came from a run that finished within ``timeout_s``, and an
item is marked ``timeout`` only when it alone exceeded ``timeout_s``. The cost of a hanging item
is at most ~2 x ``timeout_s`` of one worker plus two (cheap, forked) worker respawns.

Memory: each worker sets ``RLIMIT_AS`` to its address-space size at start-up plus
``memory_mb`` (workers are forked, so they inherit the parent's mappings - e.g. torch's - and an
absolute cap could be below what the process already maps). A ``MemoryError`` gives status
``error``; a worker killed by the OS gives ``error`` too.

Lifetime: the wall-clock bound is enforced by the parent, so a worker must not outlive it. On
Linux each worker asks the kernel (``PR_SET_PDEATHSIG``) to be killed when the process that
started it dies - a job killed by its time limit, the OOM killer or Ctrl-C does not leave a
worker computing ``9^{9^{9^{9}}}`` behind.

Inputs: NUL bytes are stripped; more than ``MAX_FRAC_DEPTH`` nested ``\\frac`` is reported as
``too_deep`` without calling Math-Verify (Math-Verify silently parses depth > ~110 as the
innermost fraction). Nothing is ever ``eval``-ed here.

Statuses
--------
``ok``           both sides parsed and were compared (``correct`` is the comparison result)
``no_answer``    the answer text is missing/empty or Math-Verify extracted nothing from it
``unparseable``  the gold answer could not be parsed (nothing to compare against)
``too_deep``     more than ``MAX_FRAC_DEPTH`` nested fractions (gold or answer)
``timeout``      the item alone ran past ``timeout_s`` and its worker was killed
``error``        an exception (MemoryError, RecursionError, ...) or a dead worker
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import queue
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redi.progress import Progress

log = logging.getLogger(__name__)

THINK_END = "</think>"
MAX_FRAC_DEPTH = 100
EXTRACTED_MAX_CHARS = 1000
STATUSES = ("ok", "no_answer", "unparseable", "too_deep", "timeout", "error")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    status: str  # "ok" | "no_answer" | "unparseable" | "too_deep" | "timeout" | "error"
    extracted: str | None  # str of the first item Math-Verify extracted from the answer, or None


def final_answer_segment(response: str) -> str | None:
    """Text after the LAST ``</think>``; ``None`` if the response has no ``</think>``."""
    if not isinstance(response, str):
        return None
    idx = response.rfind(THINK_END)
    if idx < 0:
        return None
    return response[idx + len(THINK_END) :]


_FRAC_RE = re.compile(r"\\[dt]?frac|[{}]")


def frac_depth(text: str) -> int:
    """Maximum nesting depth of ``\\frac`` (also ``\\dfrac``/``\\tfrac``) with braced arguments.

    A fraction counts as open from its command until its second braced argument closes; the
    shorthand ``\\frac12`` cannot nest and is not counted. Linear in ``len(text)``.
    """
    depth = 0  # brace depth
    open_fracs: list[list[int]] = []  # [brace depth at the command, closed args]
    pending = False  # a \frac was just seen; its first "{" decides whether it is braced
    best = 0
    for m in _FRAC_RE.finditer(text):
        tok = m.group()
        if tok == "{":
            if pending:
                open_fracs.append([depth, 0])
                best = max(best, len(open_fracs))
                pending = False
            depth += 1
        elif tok == "}":
            pending = False
            depth -= 1
            if open_fracs and open_fracs[-1][0] == depth:
                open_fracs[-1][1] += 1
                if open_fracs[-1][1] >= 2:
                    open_fracs.pop()
            elif open_fracs and open_fracs[-1][0] > depth:  # unbalanced: drop stale
                while open_fracs and open_fracs[-1][0] > depth:
                    open_fracs.pop()
        else:
            pending = True
    return best


# ----------------------------------------------------------------------------- worker side

_MV = None  # (parse, verify, extraction config) once imported


class _ExceptionRecorder(logging.Handler):
    """Collects the exception types Math-Verify logs (it swallows comparison errors and logs
    them at DEBUG), so a swallowed MemoryError/RecursionError still gives status ``error``."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.seen: list[type] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[0] is not None:
            self.seen.append(record.exc_info[0])


_RECORDER = _ExceptionRecorder()


def _mv():
    global _MV
    if _MV is None:
        # Timeouts are enforced from outside, so Math-Verify's own are disabled; its log output
        # (the "timeout is disabled" warning, debug tracebacks) is captured, not printed.
        mv_logger = logging.getLogger("math_verify")
        mv_logger.setLevel(logging.DEBUG)
        mv_logger.propagate = False
        if _RECORDER not in mv_logger.handlers:
            mv_logger.addHandler(_RECORDER)
        import math_verify.grader as grader
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        # The one patch point: Math-Verify's numeric comparison is replaced by ours for every
        # path that calls it (see numeric_equal). Idempotent.
        global _MV_NUMERIC_EQ
        if _MV_NUMERIC_EQ is None:
            _MV_NUMERIC_EQ = grader.sympy_numeric_eq
        grader.sympy_numeric_eq = numeric_equal
        cfg = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
        _MV = (parse, verify, cfg)
    return _MV


# ----------------------------------------------------------------------------- scoring rules
# Our decisions around Math-Verify live here, and only here. Both corpus labelling
# (``label_rule: recomputed``, :mod:`redi.data.verify_stage`) and evaluation scoring
# (:mod:`redi.eval.score`) reach Math-Verify through :func:`check_answer`.

#: Relative tolerance of the numeric comparison when either side is a float (a decimal point or
#: scientific notation): ``|a - b| <= REL_TOL * max(|a|, |b|)``, i.e. agreement to about six
#: significant digits at every magnitude, narrowed to half a unit of the last written digit of
#: each written float (:func:`written_units`). Numbers without a float compare exactly.
REL_TOL = 1e-6

_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Text allowed between two boxes of ONE answer: math delimiters, whitespace/line breaks, commas,
# semicolons, "and"/"or", spacing commands, alignment marks, and a variable label (``y =``).
_BOX_SEP = re.compile(
    r"(?:\s|\$|\\[()\[\]]|[,;&~]|\\\\|\\[,;:!]|\\q?quad\b|\band\b|\bor\b"
    r"|\\text\{\s*(?:,?\s*(?:and|or)|,)?\s*\}|[A-Za-z](?:_\{?\w+\}?)?\s*=)*"
)
_TEXT_NUMBER = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{\s*(-?(?:\d[\d,]*)?\.?\d+)\s*\}")
# A mixed number in plain text or a box: "5 12/7" (integer, space, integer/integer).
_MIXED = re.compile(r"(?<![\w.,/^{}])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\w/]|[.,]\d)")


# Minus look-alikes. Always a minus: U+2212 MINUS SIGN, U+FE63 SMALL HYPHEN-MINUS, U+FF0D
# FULLWIDTH HYPHEN-MINUS, U+2796 HEAVY MINUS SIGN. Dashes (U+2010 hyphen, U+2011 non-breaking
# hyphen, U+2012 figure dash, U+2013 en dash) only where they stand for a unary minus: directly
# before an operand and not directly after one ("is –7", "(–2, 3)", "10^{–5}"; "3–5" is a range
# and stays as written).
_MINUS_TABLE = str.maketrans(dict.fromkeys("\u2212\ufe63\uff0d\u2796", "-"))
_DASHES = "\u2010\u2011\u2012\u2013"
_DASH_AS_MINUS = re.compile(rf"(?<![\w)\]}}])[{_DASHES}](?=[\d.(\\{{A-Za-z])")
_ANY_MINUS_LIKE = re.compile(rf"[\u2212\ufe63\uff0d\u2796{_DASHES}]")
# e-notation: a number directly followed by e/E and a signed integer exponent, not inside a
# name (x2e3), not an exponent's base or index (10^2e3), not followed by a letter, digit, "^"
# or a decimal point with digits (2e3x, 2e3^2 keep their old reading: e is Euler's number).
_E_NOTATION = re.compile(r"(?<![\w.^_])(\d+\.?\d*|\.\d+)[eE]([-+]?\d+)(?![\w^]|\.\d)")
_E_HINT = re.compile(r"\d[eE][-+]?\d")  # cheap pre-check: most texts have no e-notation
#: Largest |exponent| written out as a plain decimal; beyond it ``M\times 10^{k}`` (LaTeX only).
E_NOTATION_MAX_EXP = 100
# A written number: mantissa (thousands groups allowed), then optionally an exponent written as
# e-notation or ``\times``/``\cdot`` 10^k.
_WRITTEN_NUMBER = re.compile(
    r"(?<![\w.])(\d+(?:(?:,|\{,\})\d{3})*(?:\.\d*)?|\.\d+)"
    r"(?:[eE]([-+]?\d+)(?![\w^]|\.\d)|\s*(?:\\times|\\cdot|\u00d7)\s*10\s*\^\s*(?:\{\s*([-+]?\d+)\s*\}|(\d)))?"
)


def read_signs(text: str) -> str:
    """Written forms Math-Verify misreads, rewritten before parsing (answers and golds alike):

    * minus look-alikes read as ``-`` (U+2212, U+FE63, U+FF0D, U+2796 always; U+2010-U+2013
      dashes where they stand for a unary minus, see ``_DASH_AS_MINUS``) - the LaTeX
      normaliser mapped U+2212 inside boxes only, so ``The answer is \u22127.`` had no answer;
    * e-notation ``6.02e23``/``1.6e-19``/``3e8`` (also ``E``) is the number times 10^exp, written
      out as a plain decimal with a decimal point (a float, like Python's ``3e8``) so that every
      extraction path - boxes, ``$...$``, plain sentences - reads it; Math-Verify read the lower
      case as Euler's number (``6.02*E*23``) and the plain-text path stopped at the ``e``.
      Euler's ``e`` elsewhere (``e^{2}``, ``2e``, ``ce^{-2t}``) is untouched. A bare ``2e3`` is
      2000 (docs/scoring-audit.md gives the reasons and its effect on the benchmarks' golds).

    Idempotent; linear in ``len(text)``.
    """
    text = _minus_signs(text)
    if _E_HINT.search(text):
        text = _E_NOTATION.sub(_e_notation_value, text)
    return text


def _minus_signs(text: str) -> str:
    """Minus look-alikes as ``-`` (see :func:`read_signs`)."""
    if _ANY_MINUS_LIKE.search(text):
        text = _DASH_AS_MINUS.sub("-", text.translate(_MINUS_TABLE))
    return text


def _e_notation_value(m: re.Match) -> str:
    from decimal import Decimal

    mant, exp = m.group(1), int(m.group(2))
    if abs(exp) > E_NOTATION_MAX_EXP:
        return f"{mant if '.' in mant else mant + '.0'}\\times 10^{{{exp}}}"
    s = format(Decimal(mant).scaleb(exp), "f")
    return s if "." in s else s + ".0"


def written_units(text: str) -> dict:
    """``{|value|: half a unit of the last written digit}`` (exact SymPy Rationals) of every
    *float* written in ``text``: a number with a decimal point, in e-notation, or a decimal
    mantissa times ``10^k``. ``1048576.0`` -> 1/20, ``2.000002 \\times 10^{6}`` -> 1/2,
    ``3.486784e9`` -> 500. Where one value is written at several precisions the finest counts.
    Integers (``3 \\times 10^{8}``) are exact and have no entry. Linear in ``len(text)``."""
    from sympy import Rational

    out: dict = {}
    for m in _WRITTEN_NUMBER.finditer(_minus_signs(text)):
        mant, e1, e2, e3 = m.groups()
        exp_s = e1 or e2 or e3
        if "." not in mant and e1 is None:
            continue
        digits = mant.replace("{,}", "").replace(",", "")
        decimals = len(digits.split(".", 1)[1]) if "." in digits else 0
        exp = int(exp_s) if exp_s else 0
        if abs(exp) > 10 * E_NOTATION_MAX_EXP:
            continue
        value = Rational(digits.rstrip(".") or "0") * Rational(10) ** exp
        half = Rational(10) ** (exp - decimals) / 2
        key = abs(value)
        if key not in out or half < out[key]:
            out[key] = half
    return out


def _mixed_value(m: re.Match) -> str:
    """``5 12/7`` -> ``47/7``: a mixed number is one value (integer plus fraction)."""
    whole, num, den = (int(x) for x in m.groups())
    return f"{whole * den + num}/{den}" if den else m.group(0)


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every top-level ``\\boxed{...}``/``\\fbox{...}`` (balanced
    braces). An unclosed box is no answer (a truncated or malformed response) and ends the scan."""
    out = []
    pos = 0
    while True:
        m = _BOX_OPEN.search(text, pos)
        if not m:
            return out
        depth, i = 1, m.end()
        while i < len(text) and depth:
            c = text[i]
            if c == "\\":
                i += 2
                continue
            depth += c == "{"
            depth -= c == "}"
            i += 1
        if depth:
            return out
        out.append((m.start(), i, text[m.end() : i - 1]))
        pos = i


def _clean_content(expr: str) -> str:
    """Content-level rewrites shared by golds and answers: ``\\text{12}`` -> ``12``; a mixed
    number ``5 12/7`` -> ``47/7`` (its value, as LaTeX ``5\\frac{12}{7}`` already reads);
    a trailing full stop dropped (not an ellipsis)."""
    s = _TEXT_NUMBER.sub(r"\1", expr)
    s = _MIXED.sub(_mixed_value, s)
    s = s.strip()
    while s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    return s


def normalize_gold(text: str) -> str:
    """A gold answer as the bare expression that is boxed and parsed.

    Strips surrounding whitespace, NUL bytes and **unescaped** ``$`` math delimiters
    (``"$69$,$84$"`` -> ``"69,84"``; an escaped dollar ``\\$18.90`` is LaTeX and stays), then
    applies the content rules of :func:`_clean_content`. Idempotent. Used by
    :func:`redi.eval.benchmarks.clean_gold` and, for corpus golds, by :func:`check_answer`.
    """
    s = _UNESCAPED_DOLLAR.sub("", text.replace("\x00", "")).strip()
    return _clean_content(s)


def answer_expression(segment: str) -> tuple[str, bool]:
    """(text to parse, boxed?) of a final-answer segment: the extraction order's first step.

    Several boxes: boxes separated only by math delimiters, whitespace or line breaks, commas,
    semicolons, "and"/"or" or a variable label (``$x=\\boxed{2}$, $y=\\boxed{3}$``) form ONE
    answer, graded as the whole set: ``\\boxed{c1, c2, ...}``. Boxes separated by other text are
    different answers and the LAST group is the answer (an earlier box is an intermediate
    result). A single box gives ``\\boxed{content}``. Without a box, the segment itself (mixed
    numbers rewritten) goes to Math-Verify's anchored LaTeX/expression extraction.
    """
    segment = read_signs(segment)
    boxes = _boxes(segment)
    if not boxes:
        return _MIXED.sub(_mixed_value, segment), False
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        between = segment[prev[1] : group[0][0]]
        if _BOX_SEP.fullmatch(between) is None:
            break
        group.insert(0, prev)
    contents = [c for c in (_clean_content(b[2]) for b in group) if c]
    return "\\boxed{" + ", ".join(contents) + "}", True


#: The gold and the answer of the verdict being computed, set by :func:`_check_one` for the
#: duration of one verdict (one verdict at a time per process, as Math-Verify's own state), and
#: ``{|value|: half unit}`` of the floats written in them (:func:`written_units`), computed on the
#: first float compared: most comparisons are between integers and never pay for it.
_UNIT_TEXTS: tuple[str, ...] = ()
_UNITS: dict | None = None


def _units() -> dict:
    global _UNITS
    if _UNITS is None:
        _UNITS = {}
        for text in _UNIT_TEXTS:
            for k, v in written_units(text).items():
                if k not in _UNITS or v < _UNITS[k]:
                    _UNITS[k] = v
    return _UNITS


def _number(expr):
    """(exact value, is_float, half unit or None, is_percent) of a closed-form real/complex
    number, else None. The half unit is the written precision of a float whose value was
    written in the gold or the answer (:data:`_UNITS`); None for exact numbers and for floats
    inside a larger expression (``2.5\\pi``)."""
    from math_verify.grader import get_pct_val, safe_sympy_doit
    from sympy import Float, Rational

    base = get_pct_val(expr)
    pct = base is not None
    x = safe_sympy_doit(base if pct else expr)
    if not getattr(x, "is_number", False) or x.free_symbols:
        return None
    if x.has(*_infinities()):
        return None
    is_float = bool(x.atoms(Float))
    unit = None
    if x.is_Float:  # exact value of the decimal as written, so 0.333333 is 333333/10^6
        x = Rational(str(x))
        unit = _units().get(abs(x))
    return x, is_float, unit, pct


_INF = None


def _infinities():
    global _INF
    if _INF is None:
        from sympy import nan, oo, zoo

        _INF = (oo, -oo, zoo, nan)
    return _INF


#: Two closed forms without a float are equal when their difference vanishes to this many
#: significant digits (SymPy ``evalf``, which raises its working precision until the digits are
#: correct). No two distinct closed forms of the size of an answer come that close (pi vs
#: 355/113 differ at 1e-7, sqrt(2) vs 665857/470832 at 1e-12), while SymPy's ``simplify`` cannot
#: prove many true identities (nested radicals: sqrt(3+2 sqrt 2) = 1 + sqrt 2).
EXACT_DIGITS = 50


def _close(x, y, is_float: bool, ux=None, uy=None) -> bool:
    """``x`` equals ``y`` under the numeric rule (see :func:`numeric_equal`); ``ux``/``uy``:
    half a unit of the last written digit of a side written as a float, else None."""
    from sympy import Rational

    if not is_float:
        if x.is_Rational and y.is_Rational:
            return bool(x == y)
        if x == y:
            return True
        n = EXACT_DIGITS + 10
        d = abs((x - y).evalf(n))
        m = max(abs(x.evalf(n)), abs(y.evalf(n)))
        return bool(d <= m * Rational(1, 10**EXACT_DIGITS))
    tol = Rational(str(REL_TOL))  # exact 10^-6: 0.333333 vs 1/3 is not decided by binary noise
    if x.is_Rational and y.is_Rational:
        bound = tol * max(abs(x), abs(y))
        for u in (ux, uy):
            if u is not None:
                bound = min(bound, u)
        return bool(abs(x - y) <= bound)
    d = abs((x - y).evalf(30))
    bound = tol * max(abs(x.evalf(30)), abs(y.evalf(30)))
    for u in (ux, uy):
        if u is not None:
            bound = min(bound, u)
    return bool(d <= bound)


def numeric_equal(a, b, float_rounding: int = 6, numeric_precision: int = 15) -> bool:
    """Our numeric comparison, installed as Math-Verify's ``grader.sympy_numeric_eq`` (which
    every comparison path - plain values, set/tuple elements, interval ends, matrix entries,
    relation sides - calls). Math-Verify's own compares floats rounded to 6 decimals and other
    numbers with an absolute ~1e-15 ``chop``, so all tiny values were equal.

    Two numbers (the rule and its reasons: docs/scoring-audit.md, "Numeric comparison"):

    * neither side holds a float: **exact** - rationals by value, closed forms (``\\sqrt{2}/2``,
      ``\\pi``) when their difference vanishes to :data:`EXACT_DIGITS` digits; an integer never
      equals a different integer, ``\\pi`` never equals ``355/113``;
    * a side holds a float: ``|a - b| <= REL_TOL * max(|a|, |b|)`` (a rounded gold such as
      ``4.6 \\times 10^{-24}``, an approximation of an exact value: about six significant
      digits), and never more than **half a unit of the last written digit** of each side written
      as a float (:func:`written_units`): ``1048576.0`` is 1048576 +- 0.05, so never 1048577;
      ``3.486784 \\times 10^{9}`` is +- 500 and equals 3486784401.

    A percent on ONE side is optional: ``35\\%`` equals ``35`` and ``0.35`` (both sides
    percent: bases compared). Anything else (symbols, matrices) goes to Math-Verify's rule.
    """
    try:
        na, nb = _number(a), _number(b)
    except Exception:  # noqa: BLE001 - exotic SymPy objects: Math-Verify's rule decides
        na = nb = None
    if na is None or nb is None:
        return _MV_NUMERIC_EQ(a, b, float_rounding, numeric_precision)
    (xa, fa, ua, pa), (xb, fb, ub, pb) = na, nb
    is_float = fa or fb
    try:
        if pa == pb:
            return _close(xa, xb, is_float, ua, ub)
        from sympy import Rational

        (pct, up), (other, uo) = ((xa, ua), (xb, ub)) if pa else ((xb, ub), (xa, ua))
        hundredth = Rational(1, 100)
        return _close(pct, other, is_float, up, uo) or _close(
            pct * hundredth, other, is_float, None if up is None else up * hundredth, uo
        )
    except (TypeError, ValueError):
        return _MV_NUMERIC_EQ(a, b, float_rounding, numeric_precision)


_MV_NUMERIC_EQ = None


def _check_one(gold: str, answer: str) -> tuple[bool, str, str | None]:
    """Runs in a worker. Returns (correct, status, extracted).

    Extraction order: (1) the last group of boxes (:func:`answer_expression`), parsed as LaTeX
    only - a box that does not parse is compared as a string, never searched for a number;
    (2) without a box, Math-Verify's order: "final answer is ..." anchors, "answer: ..." anchors,
    any ``$...$``/``\\(...\\)`` environment, then plain numbers/expressions, rightmost first.
    The gold is :func:`normalize_gold`-ed, boxed and parsed the same way.
    """
    global _UNITS, _UNIT_TEXTS
    parse, verify, cfg = _mv()
    _RECORDER.seen.clear()
    try:
        g = normalize_gold(gold)
        _UNIT_TEXTS, _UNITS = (g, answer), None
        g_text, g_boxed = answer_expression(g if ("\\boxed" in g or "\\fbox" in g) else "\\boxed{" + g + "}")
        gold_parsed = parse(g_text, cfg[:1], parsing_timeout=None, raise_on_error=True)
        if not gold_parsed:
            gold_parsed = parse(read_signs(g), cfg, parsing_timeout=None, raise_on_error=True)
        if not gold_parsed:
            return False, "unparseable", None
        text, boxed = answer_expression(answer)
        pred = parse(text, cfg[:1] if boxed else cfg, parsing_timeout=None, raise_on_error=True)
        if not pred:
            return False, "no_answer", None
        extracted = str(pred[0])[:EXTRACTED_MAX_CHARS]
        # raise_on_error=False keeps Math-Verify's semantics: an error in one (gold, pred)
        # combination does not stop the others from matching.
        ok = bool(verify(gold_parsed, pred, timeout_seconds=None, raise_on_error=False))
        if not ok and any(issubclass(t, (MemoryError, RecursionError)) for t in _RECORDER.seen):
            return False, "error", extracted
        return ok, "ok", extracted
    except MemoryError:
        return False, "error", None
    except RecursionError:
        return False, "error", None
    except Exception:  # noqa: BLE001 - untrusted input; any failure is an "error" verdict
        return False, "error", None
    finally:
        _UNIT_TEXTS, _UNITS = (), None


def check_answer(gold: str, answer: str) -> Verdict:
    """One gold-first verdict in THIS process (no bound): the function every score goes
    through (:func:`verify_many` runs it in bounded workers). For tests and small tools."""
    verdict, item = _prepare(gold, answer)
    if verdict is not None:
        return verdict
    return Verdict(*_check_one(*item))


def _check_batch(items: list[tuple[str, str]]) -> list[tuple[bool, str, str | None, float]]:
    out = []
    for g, a in items:
        t = time.perf_counter()
        ok, status, extracted = _check_one(g, a)
        out.append((ok, status, extracted, time.perf_counter() - t))
    return out


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _die_with_parent(parent_pid: int | None) -> None:
    """Linux: have the kernel SIGKILL this worker when its parent dies (see module doc)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's timeout is the only bound
        return
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)


def _worker_init(memory_mb: int, parent_pid: int | None = None) -> None:
    import resource

    _die_with_parent(parent_pid)

    if memory_mb and memory_mb > 0:
        limit = _address_space_bytes() + int(memory_mb) * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    _mv()


# ----------------------------------------------------------------------------- parent side


def _prepare(gold, answer) -> tuple[Verdict | None, tuple[str, str]]:
    """Pre-checks done in the parent (cheap, linear); returns a verdict if no worker is needed."""
    if not isinstance(gold, str) or not gold.replace("\x00", "").strip():
        return Verdict(False, "unparseable", None), ("", "")
    gold = gold.replace("\x00", "")
    if not isinstance(answer, str):
        return Verdict(False, "no_answer", None), ("", "")
    answer = answer.replace("\x00", "")
    if not answer.strip():
        return Verdict(False, "no_answer", None), ("", "")
    if frac_depth(gold) > MAX_FRAC_DEPTH or frac_depth(answer) > MAX_FRAC_DEPTH:
        return Verdict(False, "too_deep", None), ("", "")
    return None, (gold, answer)


def _fork_context():
    try:
        return multiprocessing.get_context("fork")
    except ValueError:  # platform without fork
        return multiprocessing.get_context()


def verify_many(
    pairs: Sequence[tuple[str, str]],
    *,
    timeout_s: float = 5.0,
    workers: int = 1,
    memory_mb: int = 2048,
    batch_size: int = 32,
) -> list[Verdict]:
    """Verify ``(gold_answer, answer_text)`` pairs; one :class:`Verdict` per pair, in order.

    ``answer_text`` is what to extract the prediction from (usually
    :func:`final_answer_segment` of a response; ``None`` gives ``no_answer``). Always runs in
    worker processes (also for ``workers=1``) so each item has a hard wall-clock bound.
    """
    timed = verify_many_timed(
        pairs, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb, batch_size=batch_size
    )
    return [v for v, _ in timed]


def verify_many_timed(
    pairs: Sequence[tuple[str, str]],
    *,
    timeout_s: float = 5.0,
    workers: int = 1,
    memory_mb: int = 2048,
    batch_size: int = 32,
) -> list[tuple[Verdict, float]]:
    """Like :func:`verify_many`, with the seconds each item took in its worker (``timeout_s``
    for a timeout, 0.0 for items decided before any worker ran)."""
    from pebble import ProcessPool

    results, prepared = _prepare_all(pairs)
    todo = list(prepared)
    if not todo:
        return results  # type: ignore[return-value]

    _mv()  # import + warm up in the parent so forked workers (and respawns) start warm
    _mv()[0]("$\\frac{1}{2}$", _mv()[2], parsing_timeout=None)

    workers = max(1, int(workers))
    batches = _batches(todo, workers, batch_size)

    t0 = time.monotonic()
    n_batch_fail = 0
    # items/s in the job's log, one line per 30 s at most
    progress = Progress("verification", len(todo), "items", logger=log)
    with ProcessPool(
        max_workers=workers,
        initializer=_worker_init,
        initargs=(memory_mb, os.getpid()),
        context=_fork_context(),
    ) as pool:
        # Completed futures are pushed onto a queue by done-callbacks: O(1) per completion,
        # also with many thousands of batches.
        done_q: queue.Queue = queue.Queue()
        outstanding = 0

        def submit(idx: list[int]) -> None:
            nonlocal outstanding
            fut = pool.schedule(_check_batch, args=([prepared[i] for i in idx],), timeout=timeout_s)
            outstanding += 1
            fut.add_done_callback(lambda f, idx=idx: done_q.put((f, idx)))

        for b in batches:
            submit(b)
        while outstanding:
            fut, idx = done_q.get()
            outstanding -= 1
            if _record_batch(fut, idx, results, progress, timeout_s):
                n_batch_fail += 1
                for i in idx:  # re-run one by one: only the guilty item is marked
                    submit([i])
    log.debug(
        "verified %d items (%d batches re-run singly) in %.2fs",
        len(todo),
        n_batch_fail,
        time.monotonic() - t0,
    )
    return results  # type: ignore[return-value]


def _prepare_all(pairs: Sequence[tuple[str, str]]) -> tuple[list, dict[int, tuple[str, str]]]:
    """Results with the verdicts decided in the parent filled in, and the items left for workers by index."""
    results: list[tuple[Verdict, float] | None] = [None] * len(pairs)
    prepared: dict[int, tuple[str, str]] = {}
    for i, (gold, answer) in enumerate(pairs):
        verdict, item = _prepare(gold, answer)
        if verdict is not None:
            results[i] = (verdict, 0.0)
        else:
            prepared[i] = item
    return results, prepared


def _batches(todo: list[int], workers: int, batch_size: int) -> list[list[int]]:
    """The indices in ``todo`` cut into batches, smaller when there are few items so all workers get work."""
    batch_size = max(1, int(batch_size))
    per_worker = -(-len(todo) // workers)
    batch_size = max(1, min(batch_size, per_worker))
    return [todo[k : k + batch_size] for k in range(0, len(todo), batch_size)]


def _record_batch(fut, idx: list[int], results: list, progress: Progress, timeout_s: float) -> bool:
    """Store a finished batch's verdicts in ``results``; True when it failed with several items (to re-run singly)."""
    from pebble import ProcessExpired

    try:
        out = fut.result()
    except (cf.TimeoutError, ProcessExpired, MemoryError, Exception) as exc:  # noqa: BLE001
        if len(idx) > 1:
            return True
        status = "timeout" if isinstance(exc, cf.TimeoutError) else "error"
        secs = float(timeout_s) if status == "timeout" else 0.0
        results[idx[0]] = (Verdict(False, status, None), secs)
        progress.update(1)
        return False
    for i, (ok, status, extracted, secs) in zip(idx, out):
        results[i] = (Verdict(bool(ok), status, extracted), float(secs))
    progress.update(len(idx))
    return False
