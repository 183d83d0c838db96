"""What every table family shares: footnotes, the tidy frame and the paper-setting note."""

from __future__ import annotations

from redi.report.collect import Results
from redi.report.paper_lookup import paper_setting
from redi.report.render import MISSING

NA = "n/a"  # no such value exists (no paper row, no expectation given): not "missing yet"


class Notes:
    """Footnotes of one table: missing files, absent paper rows, free text."""

    def __init__(self, max_listed: int):
        self.max_listed = max_listed  # missing results named before "and N more" (ReportConfig)
        self.missing: list[str] = []
        self.text: list[str] = []

    def miss(self, what: str) -> str:
        """Record a missing result and return the cell text for it."""
        if what not in self.missing:
            self.missing.append(what)
        return MISSING

    def add(self, text: str) -> None:
        if text not in self.text:
            self.text.append(text)

    def render(self) -> list[str]:
        out = list(self.text)
        if self.missing:
            listed = ", ".join(self.missing[: self.max_listed])
            extra = len(self.missing) - self.max_listed
            more = f" and {extra} more" if extra > 0 else ""
            out.append(f"{MISSING} = not available yet (not evaluated / not run): {listed}{more}.")
        return out


def frame(rows: list[dict], columns: list[str] | None = None):
    """The tidy CSV frame of a table; a column whose values are all integers (or missing) stays
    an integer column (pandas' nullable ``Int64``: ``3000``, never ``3000.0``)."""
    import pandas as pd

    out = pd.DataFrame(rows, columns=columns) if columns else pd.DataFrame(rows)
    for column in out.columns:
        values = [row.get(column) for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[column] = out[column].astype("Int64")
    return out


def p100(value):
    """A fraction as percent for the CSV (unrounded); None stays None."""
    return None if value is None else 100.0 * value


def setting_note(results: Results, notes: Notes) -> None:
    if not paper_setting(results.config):
        notes.add(
            "No paper counterpart: this config is not the paper's setting (synthetic corpus or a "
            "student other than Qwen2.5-Math-1.5B), so only our numbers are shown."
        )
