"""Snakemake adapter: best checkpoint of a run (``redi.eval.select.select_best_files``).

input:  the run's intermediate metrics.json files (all inputs, or ``input.metrics``).
params: ``run`` (optional; default wildcards.run), ``checkpoints`` (optional {ckpt: model path};
        default: the ``model_path`` each metrics.json records).
output: the choice as JSON (``output[0]``).
"""

import _bootstrap

_bootstrap.setup_logging(snakemake.log[0])

from redi.runtime import set_threads  # noqa: E402

set_threads(snakemake.threads)

from redi.eval.select import select_best_files  # noqa: E402

params = snakemake.params
metrics = list(snakemake.input.get("metrics") or snakemake.input)
run = params.get("run") or snakemake.wildcards.get("run")
checkpoints = params.get("checkpoints")
select_best_files(metrics, snakemake.output[0], run=run, checkpoint_paths=checkpoints)
