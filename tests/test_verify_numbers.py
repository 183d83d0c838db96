"""How written numbers are read and compared (redi.verify), on the five benchmarks' real golds.

Three kinds of fault, each checked on every benchmark gold it applies to, on every extraction
path (a box, ``The answer is R.``, ``Therefore, the final answer is: R``), through the bounded
workers that score evaluations and label the corpus (:func:`redi.verify.verify_many`):

1. precision: a written float is compared at the precision it was written with, closed forms
   without a float exactly, so an exact gold never equals a different value nearby (large
   integers, rational approximations of irrationals, one unit off in the last written digit),
   while properly rounded approximations and rounded golds keep passing;
2. e-notation (``6.02e23``) is a number times 10^exp, not Euler's number; Euler's ``e`` in
   expressions keeps its meaning;
3. minus look-alikes (U+2212, U+2013 as a minus, U+FE63, U+FF0D) read as ``-`` in answers and
   golds, boxed or not.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from redi.eval.audit import numeric
from redi.eval.benchmarks import load_benchmark
from redi.verify import read_signs, verify_many, written_units

ROOT = Path(__file__).resolve().parents[1]
BENCH = ("aime", "amc", "math", "minerva", "olympiad_bench")
MINUS_LIKE = ("\u2212", "\u2013", "\ufe63", "\uff0d")
E_NOTATION_GOLD = re.compile(r"^(-?\d+(?:\.\d+)?)e([-+]?\d+)$")


@pytest.fixture(scope="module")
def golds() -> list[tuple[str, int, str]]:
    """(benchmark, row, gold) of every acceptable gold of the five benchmarks."""
    out = []
    for name in BENCH:
        for p in load_benchmark(ROOT / "data" / "benchmarks" / f"{name}.json"):
            out += [(name, p.index, g) for g in p.golds]
    return out


def _boxed(expr: str) -> str:
    return f"Therefore, the final answer is: $\\boxed{{{expr}}}$. I hope it is correct"


def _paths(expr: str) -> list[str]:
    """``expr`` as a final answer on every extraction path."""
    return [_boxed(expr), f"The answer is {expr}.", f"Therefore, the final answer is: {expr}"]


def _check(cases: list[tuple[str, str, bool, str]]) -> None:
    """``(gold, answer segment, expected, label)``: all verdicts, failures listed together."""
    verdicts = verify_many([(g, a) for g, a, _, _ in cases], workers=2, timeout_s=20)
    wrong = [
        f"{label}: gold {g!r} answer {a!r} -> {v.correct} ({v.status}, {v.extracted!r}), expected {want}"
        for (g, a, want, label), v in zip(cases, verdicts)
        if v.correct != want
    ]
    assert not wrong, f"{len(wrong)} of {len(cases)} wrong:\n" + "\n".join(wrong[:40])


def _dec(v: Fraction, sig: int) -> tuple[str, str]:
    """``v`` rounded to ``sig`` significant digits as ``M \\times 10^{k}`` and the same with the
    last digit one unit further from ``v`` (a float that is wrong at its own precision)."""
    exp = 0
    m = abs(v)
    while m >= 10:
        m, exp = m / 10, exp + 1
    while m < 1:
        m, exp = m * 10, exp - 1
    scaled = abs(v) / Fraction(10) ** (exp - sig + 1)
    r = round(scaled)
    off = r + 1 if r >= scaled else r - 1
    sign = "-" if v < 0 else ""

    def fmt(n: int) -> str:
        s = str(n)
        return f"{sign}{s[0]}.{s[1:]} \\times 10^{{{exp + len(s) - sig}}}"

    return fmt(r), fmt(off)


# ----------------------------------------------------------------------------- 1. precision


def test_large_integer_golds_never_equal_a_neighbouring_float(golds):
    """Every integer gold >= 10^6 of the benchmarks (and the same kind at other magnitudes): a
    float that writes the units digit must be that integer; a properly rounded approximation at
    seven significant digits passes, one unit off in its last digit fails."""
    ints = [int(g) for _, _, g in golds if re.fullmatch(r"-?\d+", g) and abs(int(g)) >= 10**6]
    assert len(ints) >= 4  # OlympiadBench: 3986729, 2271380, 1002001, 10112369
    ints += [1048577, 2000003, 3486784401, 10**12 + 7, -(2**31) + 1]
    cases = []
    for n in ints:
        g = str(n)
        digits = str(abs(n))
        sign = "-" if n < 0 else ""
        for nb in (n - 1, n + 1):
            d = str(abs(nb))
            s = "-" if nb < 0 else ""
            cases.append((g, _boxed(f"{nb}.0"), False, "neighbour N.0"))
            cases.append((g, _boxed(f"{s}{d[0]}.{d[1:]} \\times 10^{{{len(d) - 1}}}"), False, "neighbour, all digits"))
            cases.append((g, _boxed(f"{s}{d[0]}.{d[1:]}e{len(d) - 1}"), False, "neighbour, e-notation"))
            cases.append((g, f"The answer is {nb}.0.", False, "neighbour N.0 unboxed"))
        cases.append((g, _boxed(f"{n}.0"), True, "N.0"))
        every_digit = f"{sign}{digits[0]}.{digits[1:]} \\times 10^{{{len(digits) - 1}}}"
        cases.append((g, _boxed(every_digit), True, "all digits"))
        rounded, off = _dec(Fraction(n), 7)
        if Fraction(n) != Fraction(re.sub(r" \\times 10\^\{(-?\d+)\}", r"e\1", rounded)):
            cases.append((g, _boxed(rounded), True, "7 significant digits"))
            cases.append((g, _boxed(off), False, "7 significant digits, last one off"))
    _check(cases)


def test_closed_forms_compare_exactly_and_floats_at_their_written_precision(golds):
    """Irrational golds of the benchmarks (square roots, pi): a different exact value within a
    relative 1e-6 (a close rational convergent) is wrong; the value rounded to 8 significant
    digits is right, one unit off in that digit is wrong; an equal closed form is right."""
    from math_verify import LatexExtractionConfig, parse

    pattern = re.compile(
        r"-?\d*\\sqrt\{\d+\}|-?\d*\\pi|-?\\frac\{\d*\\sqrt\{\d+\}\}\{\d+\}|-?\\frac\{\d*\\pi\}\{\d+\}"
    )
    chosen = sorted({g for _, _, g in golds if pattern.fullmatch(g)})
    assert len(chosen) >= 15
    cases = []
    for g in chosen:
        expr = parse(f"\\boxed{{{g}}}", [LatexExtractionConfig()], parsing_timeout=None)[0]
        value = Fraction(str(expr.evalf(40)))
        conv = value.limit_denominator(10**5)
        assert conv != value and abs(conv - value) <= abs(value) * Fraction(1, 10**7)
        cases.append((g, _boxed(f"\\frac{{{conv.numerator}}}{{{conv.denominator}}}"), False, "rational convergent"))
        rounded, off = _dec(value, 8)
        cases.append((g, _boxed(rounded), True, "8 significant digits"))
        cases.append((g, _boxed(off), False, "8 significant digits, last one off"))
    cases += [
        ("\\frac{\\sqrt{2}}{2}", _boxed("\\frac{1}{\\sqrt{2}}"), True, "equal closed form"),
        ("1 + \\sqrt{2}", _boxed("\\sqrt{3 + 2\\sqrt{2}}"), True, "nested radical"),
        ("\\pi", _boxed("\\frac{355}{113}"), False, "Zu Chongzhi's ratio"),
    ]
    _check(cases)


def test_rounded_golds_and_earlier_fixes_keep_their_rule(golds):
    """Rounded (Minerva-style) golds keep the relative rule; tiny magnitudes stay exact."""
    sci = [g for b, _, g in golds if b == "minerva" and numeric(g) and numeric(g)[0] == "sci"]
    assert len(sci) >= 20
    cases = []
    for g in sci:
        mant, exp = numeric(g)[1]
        for factor, want, label in ((1, True, "same value"), (2, False, "twice the gold")):
            m = format(Decimal(mant.numerator * factor) / Decimal(mant.denominator), "f")
            cases.append((g, _boxed(f"{m} \\times 10^{{{exp}}}"), want, label))
    cases += [
        ("\\frac{3}{2^{70}}", _boxed("\\frac{1}{2^{70}}"), False, "tiny rational"),
        ("4.6 \\times 10^{-24}", _boxed("9.2\\times10^{-24}"), False, "tiny float"),
        ("0.333333", _boxed("\\frac{1}{3}"), True, "rounded gold, exact answer"),
        ("\\frac{1}{3}", _boxed("0.333333"), True, "six digits of an exact gold"),
        ("\\frac{1}{3}", _boxed("0.3333"), False, "four digits of an exact gold"),
    ]
    _check(cases)


def test_written_units_read_the_precision_as_written():
    from sympy import Rational

    assert written_units("1048576.0") == {Rational(1048576): Rational(1, 20)}
    assert written_units("2.000002 \\times 10^{6}") == {Rational(2000002): Rational(1, 2)}
    assert written_units("3.486784e9") == {Rational(3486784000): Rational(500)}
    assert written_units("1,048,576.0 and 4.6\\cdot10^{-24}")[Rational(1048576)] == Rational(1, 20)
    assert written_units("3 \\times 10^{8} and 42") == {}  # exact numbers have no tolerance


# ----------------------------------------------------------------------------- 2. e-notation


def test_e_notation_golds_read_as_powers_of_ten(golds):
    """Every e-notation gold of the benchmarks (Minerva) and its reading: the LaTeX form, the
    e-form boxed and unboxed, upper case, and more digits pass; the old Euler reading
    (``M*e*k``), a wrong exponent and twice the mantissa fail."""
    import math

    enot = [(b, i, g) for b, i, g in golds if E_NOTATION_GOLD.match(g)]
    assert len(enot) >= 10, enot
    cases = []
    for _, _, g in enot:
        mant, exp = E_NOTATION_GOLD.match(g).groups()
        k = int(exp)
        cases.append((g, _boxed(f"{mant} \\times 10^{{{k}}}"), True, "LaTeX form"))
        cases.append((g, _boxed(f"{mant}E{k}"), True, "upper case"))
        cases += [(g, a, True, "e-form") for a in _paths(f"{mant}e{k}")]
        euler = float(mant) * math.e * k if not exp.startswith(("-", "+")) else float(mant) * math.e + k
        cases.append((g, _boxed(f"{euler:.7g}"), False, "Euler reading"))
        cases.append((g, _boxed(f"{mant} \\cdot e \\cdot {abs(k)}"), False, "Euler reading, symbolic"))
        cases += [(g, a, False, "wrong exponent") for a in _paths(f"{mant}e{k + 1}")]
        cases.append((g, _boxed(f"{2 * float(mant):g}e{k}"), False, "twice the mantissa"))
    _check(cases)


def test_numeric_golds_accept_answers_in_e_notation(golds):
    """Integer and decimal golds of every benchmark, answered in e-notation on every path."""
    picked: dict[str, list[str]] = {}
    for b, _, g in golds:
        num = numeric(g)
        if num and num[0] in ("int", "dec") and num[1] != 0 and len(picked.setdefault(b, [])) < 12:
            picked[b].append(g)
    cases = []
    for b, gs in picked.items():
        for g in gs:
            v = numeric(g)[1]
            exp = len(str(abs(v.numerator) // v.denominator)) - 1 if abs(v) >= 1 else -1
            mant = v / Fraction(10) ** exp
            while abs(mant) < 1:
                mant, exp = mant * 10, exp - 1
            m = f"{float(mant):.12g}"
            assert Fraction(m) * Fraction(10) ** exp == v
            cases += [(g, a, True, f"{b} e-form") for a in _paths(f"{m}e{exp}")]
            cases.append((g, _boxed(f"{m}e{exp + 1}"), False, f"{b} exponent + 1"))
    _check(cases)


def test_euler_e_keeps_its_meaning_and_bare_2e3_is_two_thousand(golds):
    """Golds with Euler's ``e`` are not rewritten (the rewrite touches only the e-notation
    golds), and both readings of a bare ``2e3`` have the consequences documented in
    docs/scoring-audit.md."""
    touched = {(b, i) for b, i, g in golds if read_signs(g) != g}
    assert touched == {(b, i) for b, i, g in golds if E_NOTATION_GOLD.match(g)}
    euler = re.compile(r"(?<![a-zA-Z\\])e(?![a-zA-Z])")
    euler_golds = [g for _, _, g in golds if euler.search(g) and not E_NOTATION_GOLD.match(g)]
    assert len(euler_golds) >= 20
    cases = [(g, _boxed(g), True, "Euler gold as written") for g in euler_golds]
    cases += [
        ("2000", _boxed("2e3"), True, "2e3 is 2 x 10^3"),
        ("6e", _boxed("2e3"), False, "2e3 is not 2*e*3"),
        ("2e", _boxed("2e"), True, "2e is 2*e"),
        ("2e", _boxed("2 e"), True, "2 e is 2*e"),
        ("e^{2}", _boxed("e^{2}"), True, "e^2"),
        ("2e^{3}", _boxed("2e^{3}"), True, "2e^3 is 2*e^3"),
        ("2e^{3}", _boxed("2000"), False, "2e^3 is not 2000"),
        ("3e^{-2t}", _boxed("3e^{-2t}"), True, "a decaying exponential"),
    ]
    _check(cases)


# ----------------------------------------------------------------------------- 3. minus signs


def test_minus_look_alikes_read_as_minus_on_every_path(golds):
    """Every negative numeric gold of the benchmarks, answered with each minus look-alike, boxed
    and unboxed; and golds written with one, answered with an ASCII minus."""
    neg = sorted({g for _, _, g in golds if (num := numeric(g)) and num[0] != "sci" and _value(num) < 0})
    assert len(neg) >= 20
    cases = []
    for g in neg:
        body = g[1:]
        for c in MINUS_LIKE:
            paths = _paths(c + body) if not body.startswith("\\") else [_boxed(c + body)]
            cases += [(g, a, True, f"U+{ord(c):04X}") for a in paths]
            cases.append((c + body, _boxed(g), True, f"gold with U+{ord(c):04X}"))
            cases.append((g, _boxed(body), False, "sign dropped"))
    cases += [
        ("-2, 3", _boxed("\u22122, 3"), True, "in a list"),
        ("(-\\infty, -2)", _boxed("(\u2212\\infty, \u20132)"), True, "in an interval"),
        ("1.6 \\times 10^{-19}", _boxed("1.6 \\times 10^{\u221219}"), True, "in an exponent"),
        ("1.6 \\times 10^{-19}", "The answer is 1.6e\u221219.", True, "in an e-notation exponent"),
    ]
    _check(cases)


def test_en_dash_between_operands_is_not_a_minus():
    assert read_signs("pages 3\u20135") == "pages 3\u20135"
    assert read_signs("x = \u20137 and (\u20132, 3)") == "x = -7 and (-2, 3)"
    assert read_signs("10^{\u20135}") == "10^{-5}"


def _value(num):
    kind, v = num
    return v[0] if kind == "sci" else v
