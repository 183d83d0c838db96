"""Snakemake adapter: DPO reference log-probs of the stage-2 start model.

input:  model (start model dir), data (pref.jsonl)
params: run (dict: the DPO run's settings; its truncation lengths and batch size are used)
output: ref_logps (results/train/{start}/ref_logps.parquet)
"""

from redi.runtime import set_threads

set_threads(snakemake.threads)  # noqa: F821

import logging  # noqa: E402

from redi.train.reference import compute_reference_logps  # noqa: E402

sm = snakemake  # noqa: F821
logging.basicConfig(filename=sm.log[0], level=logging.INFO,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
compute_reference_logps(
    str(sm.input.model),
    str(sm.input.data),
    str(sm.output.ref_logps if hasattr(sm.output, "ref_logps") else sm.output[0]),
    dict(sm.params.run),
    threads=sm.threads,
)
