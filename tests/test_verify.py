"""Bounded Math-Verify (redi.verify)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from redi import verify as V
from redi.verify import Verdict, final_answer_segment, frac_depth, verify_many


def test_final_answer_segment():
    assert final_answer_segment("<think>\nabc</think>\n\nThe answer is $\\boxed{3}$") == (
        "\n\nThe answer is $\\boxed{3}$"
    )
    # last </think> wins
    assert final_answer_segment("<think>a</think>b</think>c") == "c"
    assert final_answer_segment("<think>\nno end \\boxed{3}") is None
    assert final_answer_segment("") is None
    assert final_answer_segment(None) is None  # type: ignore[arg-type]


def test_frac_depth():
    assert frac_depth("\\frac{1}{2}") == 1
    assert frac_depth("\\frac{\\frac{1}{2}}{3} + \\frac{1}{4}") == 2
    assert frac_depth("\\frac12 + \\dfrac{1}{\\tfrac{1}{2}}") == 2
    assert frac_depth("{{{{}}}}") == 0
    assert frac_depth("\\frac{1}{" * 150 + "2" + "}" * 150) == 150


KNOWN = [
    (("1/2", "\\boxed{\\frac{1}{2}}"), True),
    (("0.5", "Therefore, the final answer is: $\\boxed{\\frac{1}{2}}$. I hope it is correct"), True),
    (("1/2", "so it is 0.5"), True),
    (("\\frac{1}{2}", "$\\boxed{1/2}$"), True),
    (("1, 2", "The solutions are $\\boxed{1, 2}$"), True),
    (("2, 1", "$\\boxed{1, 2}$"), True),
    (("64", "Therefore, the final answer is: $\\boxed{64}$. I hope it is correct"), True),
    (("-3", "$\\boxed{-3}$"), True),
    (("3", "$\\boxed{4}$"), False),
    (("1/2", "$\\boxed{\\frac{1}{3}}$"), False),
    (("1, 2", "$\\boxed{1, 3}$"), False),
    (("64", "Therefore, the final answer is: $\\boxed{46}$. I hope it is correct"), False),
]


def test_known_correct_and_wrong():
    pairs = [p for p, _ in KNOWN]
    out = verify_many(pairs, timeout_s=10, workers=2)
    assert len(out) == len(pairs)
    for (pair, expected), v in zip(KNOWN, out):
        assert isinstance(v, Verdict)
        assert v.status == "ok", (pair, v)
        assert v.correct is expected, (pair, v)
        assert v.extracted is not None
    assert out[6].extracted == "64"


def test_missing_answers_and_bad_gold():
    resp = "<think>\nI think it is 4 but I ran out of tokens \\boxed{4}"
    out = verify_many(
        [
            ("4", final_answer_segment(resp)),  # no </think>: None
            ("4", ""),
            ("4", "no number here at all"),
            ("", "\\boxed{4}"),
        ],
        timeout_s=10,
    )
    assert [v.status for v in out] == ["no_answer", "no_answer", "no_answer", "unparseable"]
    assert not any(v.correct for v in out)


def test_hanging_item_is_bounded_and_others_finish():
    pairs = [("5", "\\boxed{9^{9^{9^{9}}}}")] + [(str(k), f"\\boxed{{{k}}}") for k in range(20)]
    timeout_s = 1.5
    t0 = time.monotonic()
    out = verify_many(pairs, timeout_s=timeout_s, workers=1, batch_size=32)
    elapsed = time.monotonic() - t0
    assert out[0] == Verdict(False, "timeout", None)
    # the other items of the killed batch were re-run one by one and are fine
    assert all(v.status == "ok" and v.correct for v in out[1:])
    # batch budget + single re-run budget + respawn/warm-up overheads
    assert elapsed < 2 * timeout_s + 8, elapsed


def test_injection_payload_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"\\boxed{{__import__('os').system('touch {marker}')}}",
        f"$\\boxed{{eval(\"__import__('os').system('touch {marker}')\")}}$",
    ]
    out = verify_many([("0", p) for p in payloads], timeout_s=10)
    assert not marker.exists()
    assert not any(v.correct for v in out)


def test_deep_frac_is_too_deep_and_nul_stripped():
    deep = "\\boxed{" + "\\frac{1}{" * 150 + "2" + "}" * 150 + "}"
    shallow = "\\boxed{" + "\\frac{1}{" * 3 + "2" + "}" * 3 + "}"
    out = verify_many(
        [("1/2", deep), ("1/2", shallow), ("2", "\\boxed{2\x00}"), ("1/2", "\x00")],
        timeout_s=10,
    )
    assert out[0] == Verdict(False, "too_deep", None)
    assert out[1].status == "ok" and out[1].correct  # 1/(1/(1/2)) = 1/2
    assert out[2].status == "ok" and out[2].correct
    assert out[3].status == "no_answer"


def test_long_answer_is_bounded():
    long = "word " * 4000 + "\\boxed{7}"
    t0 = time.monotonic()
    out = verify_many([("7", long)], timeout_s=5)
    assert time.monotonic() - t0 < 12
    assert out[0].status in {"ok", "timeout"}


def test_memory_error_is_error(monkeypatch):
    def boom(*a, **k):
        raise MemoryError

    parse, verify, cfg = V._mv()
    monkeypatch.setattr(V, "_MV", (boom, verify, cfg))
    assert V._check_one("1", "\\boxed{1}") == (False, "error", None)

    def swallowing_verify(gold, pred, **kwargs):
        # Math-Verify catches comparison errors and only logs them at DEBUG
        try:
            raise MemoryError
        except MemoryError:
            logging.getLogger("math_verify.grader").debug("Error during comparison", exc_info=True)
        return False

    monkeypatch.setattr(V, "_MV", (parse, swallowing_verify, cfg))
    assert V._check_one("1", "\\boxed{1}") == (False, "error", "1")


def test_worker_memory_cap_applies():
    code = (
        "from redi.verify import _worker_init\n"
        "_worker_init(200)\n"
        "try:\n"
        "    b = bytearray(1 << 30)\n"
        "    print('allocated')\n"
        "except MemoryError:\n"
        "    print('capped')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "capped", out.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_order_preserved_many(workers):
    pairs = [(str(k), f"$\\boxed{{{k if k % 3 else k + 1}}}$") for k in range(100)]
    out = verify_many(pairs, timeout_s=10, workers=workers, batch_size=16)
    assert [v.correct for v in out] == [bool(k % 3) for k in range(100)]
