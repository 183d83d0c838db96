"""Snakemake adapter: curate D_SFT and D_Pref.

input.verified, input.tokenizer (student dir), input.benchmarks (optional list of JSON files,
named by file stem unless params.benchmarks maps name -> path); params.cfg (curation dict);
output.sft, output.pref, output.report_json, output.report_md, output.rejects; threads; log[0].
"""

import _bootstrap  # noqa: F401  (puts the repository's src/ on sys.path)

import logging
from pathlib import Path

from redi.data.curate import curate
from redi.runtime import set_threads

set_threads(snakemake.threads)  # noqa: F821 - transformers may pull in torch; also pins tokenizers
logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, force=True)  # noqa: F821
logging.captureWarnings(True)
benchmarks = dict(getattr(snakemake.params, "benchmarks", None) or {})  # noqa: F821
if not benchmarks:
    files = getattr(snakemake.input, "benchmarks", None) or []  # noqa: F821
    files = [files] if isinstance(files, str) else list(files)
    benchmarks = {Path(p).stem: p for p in files}
out = snakemake.output  # noqa: F821
report = curate(
    snakemake.input.verified,  # noqa: F821
    snakemake.input.tokenizer,  # noqa: F821
    out.sft,
    out.pref,
    out.report_json,
    out.report_md,
    out.rejects,
    dict(getattr(snakemake.params, "cfg", None) or {}),  # noqa: F821
    benchmarks,
)
logging.info("curate: final %s; expected %s", report["final"], report["expected"])
