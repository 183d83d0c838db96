"""Stage: eval.

Evaluation of checkpoints on the math benchmarks (generation, Math-Verify scoring, metrics):

* :mod:`redi.eval.benchmarks` - benchmark files, gold normalisation, problem ids;
* :mod:`redi.eval.config` - ``EvalConfig``/``SamplingConfig``: every setting of an evaluation;
* :mod:`redi.eval.generate` - what every sampling backend shares (records, seeds, budget check);
* :mod:`redi.eval.backends` - the backends by name, one per file (``transformers``, ``vllm``);
* :mod:`redi.eval.score` - final-answer extraction rules and bounded verification;
* :mod:`redi.eval.metrics` - pass@1, the paper's SEM, unbiased pass@k, averages;
* :mod:`redi.eval.run` - ``evaluate(model, benchmark, ..., EvalConfig)``: one model x one
  benchmark, resumable;
* :mod:`redi.eval.select` - best checkpoint of a run;
* :mod:`redi.eval.cli` - ``redi eval evaluate|generate|select-best|score-gold``.
"""
