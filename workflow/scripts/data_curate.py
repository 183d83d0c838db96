"""Snakemake adapter: curate D_SFT and D_Pref (``redi.data.curate.curate``).

input.verified, input.tokenizer (student dir), input.origins (teacher stage only), and one
input per decontamination benchmark (its JSON file, named as the benchmark);
params.cfg (config.curation), params.benchmarks (the decontamination benchmarks' names);
output.sft, output.pref, output.report_json, output.report_md, output.rejects; threads; log[0].
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.runtime import set_threads  # noqa: E402

set_threads(snakemake.threads)  # transformers may pull in torch; also pins tokenizers

from redi.data.config import CurationConfig  # noqa: E402
from redi.data.curate import curate  # noqa: E402

out = snakemake.output
curate(
    snakemake.input.verified,
    snakemake.input.tokenizer,
    out.sft,
    out.pref,
    out.report_json,
    out.report_md,
    out.rejects,
    CurationConfig.from_dict(snakemake.params.cfg),
    {name: snakemake.input[name] for name in snakemake.params.benchmarks},  # name -> file
    origins_path=snakemake.input.get("origins"),
)
