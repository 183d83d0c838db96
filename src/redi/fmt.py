"""Display formatting shared by run names, labels and report tables (ground floor: no imports
from ``redi``).

* :func:`format_number` - the short, path-safe spelling of a hyper-parameter used in run names
  (``redi-a0.8-lr1e-6``), run labels (``REDI α=0.8, LR 1e-6``) and table cells.
"""

from __future__ import annotations


def format_number(value: float) -> str:
    """Short, path-safe number: 1e-06 -> 1e-6, 0.0001 -> 1e-4, 0.001 -> 0.001, 0.80 -> 0.8, 2.0 -> 2.

    Values in (0, 1e-3) are written in exponent form without trailing zeros; others as ``%g``.
    """
    text = f"{value:e}" if 0 < abs(value) < 1e-3 else f"{value:g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return text


__all__ = ["format_number"]
