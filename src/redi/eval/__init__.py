"""Stage: eval.

Evaluation of checkpoints on the math benchmarks (generation, Math-Verify scoring, metrics):

* :mod:`redi.eval.benchmarks` - benchmark files, gold normalisation, problem ids;
* :mod:`redi.eval.generate` - the ``transformers`` and ``vllm`` sampling backends;
* :mod:`redi.eval.score` - final-answer extraction rules and bounded verification;
* :mod:`redi.eval.metrics` - pass@1, the paper's SEM, unbiased pass@k, averages;
* :mod:`redi.eval.run` - ``evaluate(...)``: one model x one benchmark, resumable;
* :mod:`redi.eval.select` - best checkpoint of a run;
* :mod:`redi.eval.tiny` - tiny offline Qwen2 stand-ins for tests and benchmarks;
* :mod:`redi.eval.cli` - ``redi eval evaluate|generate|select-best|score-gold``.
"""
