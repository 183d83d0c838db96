"""Stage: train. One trainer for every objective of the registry (one file per concept).

* ``config.py``      RunConfig: every knob of a run, its default, validation
* ``objectives.py``  the objective registry: each loss (one small function), its parameters,
                     labels, defaults; read by config, plan, rules and report
* ``logprobs.py``    response log-probs without full logits (chunked head, recomputed backward)
* ``batching.py``    chat-template tokenisation, seeded length-grouped batches, padding / packing
* ``schedule.py``    step arithmetic: ``checkpoint_steps`` (the steps a run saves; recorded in
                     ``summary.json``, which the eval rules read)
* ``collapse.py``    the collapse guard
* ``trainer.py``     RediTrainer (transformers.Trainer subclass): loss, metrics, atomic checkpoints
* ``checkpoints.py`` checkpoint folders: resumable, model vs trainer files, pruning, fsync
* ``environment.py`` where and how a job computes: device, precision mode, attention, padding;
                     training and the reference pass agree on it
* ``run.py``         ``train()``: prepare -> resume -> build trainer -> outputs (model/, metrics.jsonl,
                     summary.json)
* ``reference.py``   ``compute_reference_logps()``: cached reference log-probs (DPO)
* ``launch.py``      one process, or ``accelerate launch`` over several GPUs
* ``cli.py``         ``redi train run | ref-logps | steps``
"""
