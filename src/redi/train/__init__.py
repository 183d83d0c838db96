"""Stage: train. One trainer for SFT, REDI, DPO and SimPO (one file per concept).

* ``config.py``      RunConfig: every knob of a run, its default, validation
* ``objectives.py``  the four losses, one small function each
* ``logprobs.py``    response log-probs without full logits (chunked head, recomputed backward)
* ``batching.py``    chat-template tokenisation, seeded length-grouped batches, padding / packing
* ``schedule.py``    step arithmetic: ``checkpoint_steps`` (shared with the Snakefile)
* ``collapse.py``    the collapse guard
* ``trainer.py``     RediTrainer (transformers.Trainer subclass): loss, metrics, atomic checkpoints
* ``run.py``         ``train()``: data -> model/, metrics.jsonl, summary.json, resume
* ``reference.py``   ``compute_reference_logps()``: cached DPO reference log-probs
* ``launch.py``      one process, or ``accelerate launch`` over several GPUs
* ``cli.py``         ``redi train run | ref-logps | steps``
* ``tiny.py``        a tiny Qwen2 tokenizer/model/data set for tests and benchmarks
"""
