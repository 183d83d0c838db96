"""The ``vllm`` backend (GPU, its own environment; ``vllm`` is imported lazily, only where an
engine is built).

``SamplingParams(n=...)``, one request per prompt, prefix caching, tensor parallel inside one
engine and/or data parallel over groups of the job's GPUs (one engine subprocess per group,
``python -m redi.eval.backends.vllm_backend SPEC``, with ``CUDA_VISIBLE_DEVICES`` set to its
group). Seeds: see :mod:`redi.eval.generate`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from redi.eval.generate import (
    Backend,
    Generation,
    GenerationJob,
    SamplingConfig,
    finish,
    request_seed,
    stop_token_ids,
)

log = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """GPU ids this job may use: ``CUDA_VISIBLE_DEVICES`` when set, else every device torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        return []


def plan_gpu_groups(
    gpus: Sequence[str], tensor_parallel_size: int | None, data_parallel_size: int | None
) -> list[list[str]]:
    """Split the job's GPUs into data-parallel groups of ``tensor_parallel_size`` GPUs each.

    Defaults: tensor parallel 1 and data parallel over every GPU (a 1.5B model fits on one
    GPU; independent engines scale best). With no GPU, one group with no devices.
    """
    gpus = list(gpus)
    if not gpus:
        return [[]]
    tp = int(tensor_parallel_size or 1)
    if tp < 1 or tp > len(gpus):
        raise ValueError(f"tensor_parallel_size={tp} with {len(gpus)} GPU(s)")
    dp_max = len(gpus) // tp
    dp = int(data_parallel_size or dp_max)
    if dp < 1 or dp > dp_max:
        raise ValueError(f"data_parallel_size={dp} x tensor_parallel_size={tp} > {len(gpus)} GPUs")
    return [gpus[g * tp : (g + 1) * tp] for g in range(dp)]


def vllm_sampling_params(sampling: SamplingConfig, n: int, seed: int, stop_ids: Sequence[int]):
    from vllm import SamplingParams

    # top_k, min_p and penalties stay at vLLM's defaults (off), as in the transformers backend.
    return SamplingParams(
        n=int(n),
        temperature=float(sampling.temperature),
        top_p=float(sampling.top_p),
        max_tokens=int(sampling.max_new_tokens),
        seed=int(seed),
        stop_token_ids=list(stop_ids),
        skip_special_tokens=False,
        detokenize=False,  # we decode ourselves, exactly like the transformers backend
    )


def _vllm_chunks(jobs: Sequence[GenerationJob], batch_size: int):
    for start in range(0, len(jobs), batch_size):
        yield jobs[start : start + batch_size]


def _vllm_generate_chunks(llm, tokenizer, jobs, sampling, stop_ids, batch_size, emit) -> None:
    """Run ``jobs`` through one vLLM engine, ``batch_size`` prompts per ``generate`` call."""
    for chunk in _vllm_chunks(jobs, batch_size):
        t0 = time.perf_counter()
        prompts = [{"prompt_token_ids": list(job.prompt_ids)} for job in chunk]
        params = [
            vllm_sampling_params(
                sampling,
                n=len(job.sample_indices),
                seed=request_seed(sampling.seed, job.problem_id) + job.sample_indices[0],
                stop_ids=stop_ids,
            )
            for job in chunk
        ]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        gens = []
        for job, request in zip(chunk, outputs):
            if len(request.outputs) != len(job.sample_indices):
                raise RuntimeError(
                    f"vLLM returned {len(request.outputs)} samples for {job.problem_id}, "
                    f"expected {len(job.sample_indices)}"
                )
            for pos, completion in enumerate(request.outputs):
                index = getattr(completion, "index", pos)
                reason = completion.finish_reason
                if reason not in ("stop", "length"):
                    raise RuntimeError(f"vLLM finish_reason {reason!r} for {job.problem_id}")
                text, length, reason = finish(completion.token_ids, stop_ids, tokenizer, reason)
                gens.append(
                    Generation(job.problem_id, job.sample_indices[index], text, length, reason)
                )
        emit(gens, time.perf_counter() - t0)


def _vllm_engine(model_path: str, llm_kwargs: dict):
    from vllm import LLM

    return LLM(model=model_path, **llm_kwargs)


def vllm_worker_main(spec_path: str) -> int:
    """One data-parallel engine (``python -m redi.eval.backends.vllm_backend SPEC``): its own process, started
    with ``CUDA_VISIBLE_DEVICES`` set to its GPU group. Appends one JSON line per finished
    ``generate`` call to the spec's ``out`` file and a final ``{"done": true}``."""
    from transformers import AutoTokenizer

    spec = json.loads(Path(spec_path).read_text())
    tokenizer = AutoTokenizer.from_pretrained(
        spec["model_path"], trust_remote_code=spec["llm_kwargs"].get("trust_remote_code", False)
    )
    jobs = [
        GenerationJob(j["problem_id"], tuple(j["prompt_ids"]), tuple(j["sample_indices"]))
        for j in spec["jobs"]
    ]
    llm = _vllm_engine(spec["model_path"], spec["llm_kwargs"])
    with open(spec["out"], "a", encoding="utf-8") as fh:

        def emit(gens: list[Generation], seconds: float) -> None:
            line = {"generations": [g.to_dict() for g in gens], "seconds": seconds}
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            fh.flush()

        _vllm_generate_chunks(
            llm,
            tokenizer,
            jobs,
            SamplingConfig(**spec["sampling"]),
            spec["stop_ids"],
            spec["batch_size"],
            emit,
        )
        fh.write(json.dumps({"done": True}) + "\n")
        fh.flush()
    return 0


class VLLMBackend(Backend):
    """vLLM engines: tensor parallel inside an engine, data parallel across engine processes.

    ``batch_size`` counts prompts per ``LLM.generate`` call (each with its ``n`` samples); the
    caller journals every call, so it is also the resume granularity.
    """

    name = "vllm"
    group_per_run = False  # one GPU job per checkpoint: a run's evaluations spread over the cluster

    def __init__(
        self,
        model_path: str | os.PathLike,
        tokenizer=None,
        *,
        batch_size: int,
        tensor_parallel_size: int | None = None,
        data_parallel_size: int | None = None,
        data_parallel: int | bool | None = None,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        enable_prefix_caching: bool = True,
        enforce_eager: bool = False,
        max_num_seqs: int | None = None,
        trust_remote_code: bool = False,
        gpus: Sequence[str] | None = None,
        python: str | None = None,
    ):
        from transformers import AutoTokenizer

        # vLLM 0.33 pins torch 2.14 and transformers < 5.21: outside conda it lives in its own
        # virtualenv, named here (evaluation.vllm.python); every engine then runs there
        self.python = str(python) if python else None
        self.model_path = str(model_path)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(
            self.model_path, trust_remote_code=trust_remote_code
        )
        self.stop_ids = stop_token_ids(self.tokenizer, self.model_path)
        self.batch_size = max(1, int(batch_size))
        if data_parallel_size is None and data_parallel is not None:  # config spelling: an int,
            # or true = every GPU group (data_parallel_size wins when both are given)
            data_parallel_size = None if data_parallel is True else 1 if data_parallel is False else data_parallel
        self.groups = plan_gpu_groups(
            visible_gpus() if gpus is None else gpus, tensor_parallel_size, data_parallel_size
        )
        self.llm_kwargs = {
            "tensor_parallel_size": max(1, len(self.groups[0])),
            "enable_prefix_caching": bool(enable_prefix_caching),
            "gpu_memory_utilization": float(gpu_memory_utilization),
            "dtype": dtype,
            "trust_remote_code": bool(trust_remote_code),
            "enforce_eager": bool(enforce_eager),
            # sampling defaults from the checkpoint's generation_config.json must not apply
            "generation_config": "vllm",
        }
        if max_model_len:
            self.llm_kwargs["max_model_len"] = int(max_model_len)
        if max_num_seqs:
            self.llm_kwargs["max_num_seqs"] = int(max_num_seqs)
        self._llm = None

    def _shards(self, jobs: Sequence[GenerationJob]) -> list[list[GenerationJob]]:
        ordered = sorted(jobs, key=lambda j: (-len(j.prompt_ids), j.problem_id))
        return [ordered[g :: len(self.groups)] for g in range(len(self.groups))]

    def generate(self, jobs, sampling, on_batch):
        jobs = list(jobs)
        if not jobs:
            return
        if len(self.groups) == 1 and self.python is None:
            if self._llm is None:
                self._llm = _vllm_engine(self.model_path, self.llm_kwargs)
            _vllm_generate_chunks(
                self._llm,
                self.tokenizer,
                self._shards(jobs)[0],
                sampling,
                self.stop_ids,
                self.batch_size,
                on_batch,
            )
            return
        self._generate_data_parallel(jobs, sampling, on_batch)

    def _generate_data_parallel(self, jobs, sampling, on_batch):
        """One engine process per GPU group, started with ``subprocess`` (not multiprocessing:
        a spawned child would re-run the parent's ``__main__``, e.g. a Snakemake script)."""
        import subprocess
        import sys
        import tempfile

        from redi.runtime import worker_env

        workdir = Path(tempfile.mkdtemp(prefix="redi-vllm-dp-"))
        workers = []
        try:
            for rank, (gpus, shard) in enumerate(zip(self.groups, self._shards(jobs))):
                if not shard:
                    continue
                spec = {
                    "model_path": self.model_path,
                    "llm_kwargs": self.llm_kwargs,
                    "jobs": [asdict(j) for j in shard],
                    "sampling": asdict(sampling),
                    "stop_ids": list(self.stop_ids),
                    "batch_size": self.batch_size,
                    "out": str(workdir / f"out-{rank}.jsonl"),
                }
                spec_path = workdir / f"spec-{rank}.json"
                spec_path.write_text(json.dumps(spec))
                Path(spec["out"]).touch()
                env = worker_env(CUDA_VISIBLE_DEVICES=",".join(gpus))
                err = open(workdir / f"stderr-{rank}.log", "wb")
                proc = subprocess.Popen(
                    [self.python or sys.executable, "-m", "redi.eval.backends.vllm_backend", str(spec_path)],
                    env=env,
                    stdout=err,
                    stderr=subprocess.STDOUT,
                )
                workers.append({"rank": rank, "proc": proc, "out": spec["out"], "pos": 0,
                                "done": False, "err": err, "log": workdir / f"stderr-{rank}.log"})  # fmt: skip
            while not all(w["done"] for w in workers):
                progressed = False
                for w in workers:
                    if w["done"]:
                        continue
                    exited = w["proc"].poll() is not None
                    with open(w["out"], "rb") as fh:
                        fh.seek(w["pos"])
                        data = fh.read()
                    complete = data[: data.rfind(b"\n") + 1]
                    w["pos"] += len(complete)
                    for line in complete.decode("utf-8").splitlines():
                        msg = json.loads(line)
                        if msg.get("done"):
                            w["done"] = True
                            continue
                        gens = [Generation(**g) for g in msg["generations"]]
                        on_batch(gens, float(msg["seconds"]))
                        progressed = True
                    if exited and not w["done"]:
                        tail = Path(w["log"]).read_text(errors="replace")[-4000:]
                        raise RuntimeError(
                            f"vLLM worker {w['rank']} exited with {w['proc'].returncode}:\n{tail}"
                        )
                if not progressed:
                    time.sleep(0.5)
            for w in workers:
                w["proc"].wait(timeout=120)
        finally:
            for w in workers:
                if w["proc"].poll() is None:
                    w["proc"].terminate()
                    try:
                        w["proc"].wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        w["proc"].kill()
                w["err"].close()
            shutil.rmtree(workdir, ignore_errors=True)

    def close(self):
        self._llm = None


if __name__ == "__main__":
    import sys

    sys.exit(vllm_worker_main(sys.argv[1]))
