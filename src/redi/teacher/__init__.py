"""The teacher stage: sample, verify and curate new teacher traces for a problem set.

``config`` (``TeacherConfig``: the ``teacher`` config section) -> ``problems`` (which problems
are sampled; ``problems.json`` in the benchmark format) -> ``sample`` (one shard: the evaluation
code path, ``redi.eval.run.evaluate``, with its resume journal and backends) -> ``corpus`` (the
new traces, mixed with the corpus' own, as a corpus in the Open-R1 Raw layout that the data
stage normalises, verifies and curates like any corpus) and ``plan`` (the expected samples and
tokens before anything runs).
"""
