"""Collapse guard: a sharp, simultaneous drop of chosen and rejected per-token log-probs.

The paper's collapse signature (symmetric REDI / DPO at high learning rates): the log-probs of
*both* the chosen and the rejected responses fall sharply together while accuracy drops and the
update norm surges. Per-step values are noisy (every step sees different pairs), so the guard
compares window means: at step ``t`` with window ``w``

    drop_x = mean(x[t-2w+1 .. t-w]) - mean(x[t-w+1 .. t])      for x in {chosen, rejected}

and flags the step when ``drop_chosen >= drop`` and ``drop_rejected >= drop`` (nats/token).
A falling rejected log-prob alone is the intended effect of the negative term and is not flagged.
"""

from __future__ import annotations

import math
from collections import deque


class CollapseDetector:
    def __init__(self, window: int, drop: float):
        self.window = int(window)
        self.drop = float(drop)
        self._chosen: deque[float] = deque(maxlen=2 * self.window)
        self._rejected: deque[float] = deque(maxlen=2 * self.window)

    def update(self, chosen: float, rejected: float) -> bool:
        """Add one step's mean per-token log-probs; True when this step is flagged."""
        self._chosen.append(float(chosen))
        self._rejected.append(float(rejected))
        if len(self._chosen) < 2 * self.window:
            return False
        return self._fell(self._chosen) and self._fell(self._rejected)

    def _fell(self, values: deque) -> bool:
        v = list(values)
        before = sum(v[: self.window]) / self.window
        after = sum(v[self.window :]) / self.window
        if not (math.isfinite(before) and math.isfinite(after)):
            return False
        return before - after >= self.drop
