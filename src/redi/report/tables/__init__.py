"""The report's tables, one module per family, built only from a
:class:`~redi.report.collect.Results`:

* :mod:`.headline` - every stage-2 run against its start and the control (paired intervals);
* :mod:`.accuracy` - Tables 1-4 (pass@1 ± SEM, pass@k; benchmark average; paper columns);
* :mod:`.sweep` - the stage-2 sweep (start / peak / final intermediate accuracy, collapse);
* :mod:`.curation` - the curation funnel; :mod:`.verification` - label agreement;
* :mod:`.cost` - wall time and GPU-hours; :mod:`.common` - footnotes and the tidy frame.

Accuracies are fractions in the metrics files and percentages in every table (CSV included:
``value_pct`` = 100 x the metrics value, unrounded). A value that does not exist yet is shown as
"—" with a footnote that names the missing file; "n/a" in a paper column means the paper has no
such row. Nothing missing is ever shown as 0.
"""

from __future__ import annotations

from redi.report.collect import Results
from redi.report.render import Table
from redi.report.tables.accuracy import table1, table2, table3, table4
from redi.report.tables.cost import cost_table
from redi.report.tables.curation import curation_table
from redi.report.tables.headline import headline_table
from redi.report.tables.sweep import sweep_table
from redi.report.tables.verification import verification_table

TABLE_BUILDERS = (
    headline_table, table1, table2, table3, table4, sweep_table, curation_table, verification_table, cost_table,
)  # fmt: skip


def build_tables(results: Results) -> list[Table]:
    """Every table of ``layout.TABLES``, in that order."""
    return [build(results) for build in TABLE_BUILDERS]
