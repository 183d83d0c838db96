"""The ``vllm`` backend (GPU, its own environment; ``vllm`` is imported lazily, only where an
engine is built).

``SamplingParams(n=...)``, one request per prompt, prefix caching, tensor parallel inside one
engine and/or data parallel over groups of the job's GPUs (one engine subprocess per group,
``python -m redi.eval.backends.vllm_backend SPEC``, with ``CUDA_VISIBLE_DEVICES`` set to its
group). Engines live for the backend's life; each call submits all its prompts at once
(:func:`drive_engine` over the :class:`VLLMEngine` protocol). Seeds: :class:`VLLMBackend`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
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


def vllm_sampling_params(sampling: SamplingConfig, n: int, seed: int | None, stop_ids: Sequence[int]):
    """vLLM's ``SamplingParams`` for one prompt's ``n`` samples; ``seed=None``: no per-request
    seed (the engine's own generator; see :class:`VLLMBackend` ``per_request_seeds``)."""
    from vllm import SamplingParams

    # top_k, min_p and penalties stay at vLLM's defaults (off), as in the transformers backend.
    params = SamplingParams(
        n=int(n),
        temperature=float(sampling.temperature),
        top_p=float(sampling.top_p),
        max_tokens=int(sampling.max_new_tokens),
        seed=None if seed is None else int(seed),
        stop_token_ids=list(stop_ids),
        skip_special_tokens=False,
        detokenize=False,  # we decode ourselves, exactly like the transformers backend
    )
    try:  # only the finished request is wanted (what LLM.generate asks for too)
        from vllm.sampling_params import RequestOutputKind

        params.output_kind = RequestOutputKind.FINAL_ONLY
    except ImportError:  # an older vLLM: outputs are checked for ``finished`` anyway
        pass
    return params


class VLLMEngine:
    """The engine protocol the backend drives, on vLLM's offline engine (the one place that
    touches vLLM's API): ``submit`` a request, ``step`` until no request is left, each step
    returning the requests that finished as ``(request_id, [(index, token_ids, finish_reason)])``.

    Every request of a job is submitted before the first step, so vLLM's scheduler sees all of
    them (continuous batching; its KV-cache limit bounds memory) and finished requests come back
    while the others run (the caller journals them as they come). ``LLM.llm_engine``'s
    ``add_request`` / ``step`` / ``has_unfinished_requests`` are the loop ``LLM.generate`` runs
    itself; where they are missing, one ``LLM.generate`` call over all requests is the fallback.
    """

    def __init__(self, model_path: str, llm_kwargs: dict):
        from vllm import LLM

        self.llm = LLM(model=model_path, **llm_kwargs)
        self._pending: list = []  # (request_id, prompt, params) for the generate fallback
        self._submitted: set[str] = set()  # ids added to the engine and not yet finished
        self._stepwise = all(hasattr(getattr(self.llm, "llm_engine", None), m)
                             for m in ("add_request", "step", "has_unfinished_requests"))  # fmt: skip

    def submit(self, request_id: str, prompt_ids, n: int, seed: int | None, sampling: SamplingConfig, stop_ids):
        params = vllm_sampling_params(sampling, n=n, seed=seed, stop_ids=stop_ids)
        prompt = {"prompt_token_ids": list(prompt_ids)}
        if self._stepwise:
            try:
                self.llm.llm_engine.add_request(str(request_id), prompt, params)
                self._submitted.add(str(request_id))
                return
            except (TypeError, AttributeError) as exc:
                if self._submitted:
                    raise
                log.warning("vLLM's engine refused add_request (%s); one LLM.generate call per job instead", exc)
                self._stepwise = False
        self._pending.append((str(request_id), prompt, params))

    def has_unfinished(self) -> bool:
        return bool(self._pending) or (self._stepwise and self.llm.llm_engine.has_unfinished_requests())

    def step(self) -> list:
        if self._pending:
            ids, prompts, params = zip(*self._pending)
            self._pending = []
            outs = self.llm.generate(list(prompts), list(params), use_tqdm=False)
            return [(rid, _completions(o)) for rid, o in zip(ids, outs)]
        done = []
        for o in self.llm.llm_engine.step():
            if o.finished:
                done.append((self._our_id(o.request_id), _completions(o)))
        return done

    def _our_id(self, engine_id: str) -> str:
        """The id we submitted (an engine may return it with a suffix of its own)."""
        if engine_id in self._submitted:
            self._submitted.discard(engine_id)
            return engine_id
        for rid in self._submitted:
            if engine_id.startswith(rid + "-"):
                self._submitted.discard(rid)
                return rid
        raise RuntimeError(f"vLLM returned a request id we did not submit: {engine_id!r}")

    def close(self) -> None:
        self.llm = None


def _completions(request_output) -> list[tuple[int, list[int], str]]:
    return [
        (getattr(c, "index", pos), list(c.token_ids), c.finish_reason) for pos, c in enumerate(request_output.outputs)
    ]


def drive_engine(engine, tokenizer, jobs, sampling, stop_ids, batch_size, emit, per_request_seeds=True) -> None:
    """Run ``jobs`` through ``engine`` (the :class:`VLLMEngine` protocol): every job submitted at
    once, then stepped; finished samples go to ``emit`` in groups of ``batch_size`` prompts (the
    journal's granularity; the last group may be smaller) as they finish.

    Seeds (``per_request_seeds``): job ``j`` asks for seed ``request_seed(seed, problem) + first
    sample index`` (vLLM gives child ``i`` of ``n`` ``seed + i``), so a sample depends only on
    (seed, problem, sample index), however jobs are batched or resumed; off: no per-request seed
    (the engine's generator, seeded once at its start).

    Raises:
        RuntimeError: a request came back with the wrong number of samples or an unknown finish
            reason.
    """
    jobs = list(jobs)
    by_id = {}
    for k, job in enumerate(jobs):
        seed = request_seed(sampling.seed, job.problem_id) + job.sample_indices[0] if per_request_seeds else None
        engine.submit(str(k), job.prompt_ids, len(job.sample_indices), seed, sampling, stop_ids)
        by_id[str(k)] = job
    ready: list[list[Generation]] = []  # finished prompts not yet journalled, one list each
    t0 = time.perf_counter()
    while engine.has_unfinished():
        for request_id, completions in engine.step():
            job = by_id.pop(request_id)
            if len(completions) != len(job.sample_indices):
                raise RuntimeError(
                    f"vLLM returned {len(completions)} samples for {job.problem_id}, expected {len(job.sample_indices)}"
                )
            gens = []
            for index, token_ids, reason in completions:
                if reason not in ("stop", "length"):
                    raise RuntimeError(f"vLLM finish_reason {reason!r} for {job.problem_id}")
                text, length, reason = finish(token_ids, stop_ids, tokenizer, reason)
                gens.append(Generation(job.problem_id, job.sample_indices[index], text, length, reason))
            ready.append(gens)
        while len(ready) >= batch_size or (ready and not engine.has_unfinished()):
            group, ready = ready[:batch_size], ready[batch_size:]
            now = time.perf_counter()
            emit([g for gens in group for g in gens], now - t0)
            t0 = now
    if by_id:
        raise RuntimeError(f"the engine finished without {len(by_id)} request(s), e.g. {next(iter(by_id.values()))}")


def make_engine(factory: str, model_path: str, llm_kwargs: dict):
    """``"module:callable"`` -> ``callable(model_path, llm_kwargs)`` (the engine protocol)."""
    import importlib

    module, name = factory.split(":")
    return getattr(importlib.import_module(module), name)(model_path, llm_kwargs)


def vllm_worker_main(spec_path: str) -> int:
    """One data-parallel engine (``python -m redi.eval.backends.vllm_backend SPEC``), started
    with ``CUDA_VISIBLE_DEVICES`` set to its GPU group and kept for the backend's life: it builds
    its engine once, then serves one generate call per line on stdin (``{"call": k, "jobs":
    [...], "sampling": {...}}``) until stdin closes, appending ``{"call": k, "generations": [...],
    "seconds": s}`` lines and a final ``{"call": k, "done": true}`` per call to the spec's
    ``out`` file. Ends with the backend's process (``redi.runtime.exit_with_launcher``): an
    engine whose evaluation job was killed frees its GPUs at once, not after its current call."""
    from transformers import AutoTokenizer

    from redi.runtime import exit_with_launcher

    exit_with_launcher()
    spec = json.loads(Path(spec_path).read_text())
    tokenizer = AutoTokenizer.from_pretrained(
        spec["model_path"], trust_remote_code=spec["llm_kwargs"].get("trust_remote_code", False)
    )
    engine = make_engine(spec["engine"], spec["model_path"], spec["llm_kwargs"])
    with open(spec["out"], "a", encoding="utf-8") as fh:
        for line in sys.stdin:
            if not line.strip():
                continue
            call = json.loads(line)
            jobs = [GenerationJob(j["problem_id"], tuple(j["prompt_ids"]), tuple(j["sample_indices"]))
                    for j in call["jobs"]]  # fmt: skip

            def emit(gens: list[Generation], seconds: float, k=call["call"]) -> None:
                msg = {"call": k, "generations": [g.to_dict() for g in gens], "seconds": seconds}
                fh.write(json.dumps(msg, ensure_ascii=False) + "\n")
                fh.flush()

            drive_engine(engine, tokenizer, jobs, SamplingConfig(**call["sampling"]), spec["stop_ids"],
                         spec["batch_size"], emit, spec["per_request_seeds"])  # fmt: skip
            fh.write(json.dumps({"call": call["call"], "done": True}) + "\n")
            fh.flush()
    engine.close()
    return 0


class VLLMBackend(Backend):
    """vLLM engines: tensor parallel inside an engine, data parallel across engine processes.

    Engines live as long as the backend: the first ``generate`` starts them (in this process for
    one GPU group, else one worker process per group) and :meth:`close` ends them, so a grouped
    evaluation (several benchmarks, one backend) loads, compiles and captures CUDA graphs once
    per GPU, not once per call. Each call sends all its prompts to the engines at once (vLLM's
    scheduler batches them and bounds memory); ``batch_size`` only sets how many finished
    prompts are journalled together.

    ``per_request_seeds`` (default true): every prompt's request carries its own seed, so a
    sample depends only on (seed, problem, sample index), also across resumes and data-parallel
    splits. vLLM then samples those requests with its per-request (slower) sampler instead of
    the FlashInfer one. False: one seed for the engine (``evaluation.sampling.seed``) and the
    fast sampler; a rerun on the same engines and job list is still seeded, but a sample's
    randomness then depends on what else is in the batch (a resumed or re-split job draws other,
    equally valid samples). The cost is measured by ``bench/gpu_check`` (item ``generate_vllm``)
    where vLLM is installed.
    """

    name = "vllm"
    group_per_run = False  # one GPU job per checkpoint: a run's evaluations spread over the cluster
    #: the engine protocol's implementation, ``"module:callable(model_path, llm_kwargs)"``
    engine_factory = "redi.eval.backends.vllm_backend:VLLMEngine"

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
        per_request_seeds: bool = True,
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
        self.per_request_seeds = bool(per_request_seeds)
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
        self._engine = None  # in-process engine (one GPU group, this Python)
        self._workers: list[dict] = []  # data-parallel engine processes
        self._workdir: Path | None = None
        self._calls = 0
        self.engine_starts = 0  # engines started over the backend's life (one per group)

    def _shards(self, jobs: Sequence[GenerationJob]) -> list[list[GenerationJob]]:
        ordered = sorted(jobs, key=lambda j: (-len(j.prompt_ids), j.problem_id))
        return [ordered[g :: len(self.groups)] for g in range(len(self.groups))]

    def _engine_kwargs(self, sampling: SamplingConfig) -> dict:
        kwargs = dict(self.llm_kwargs)
        if not self.per_request_seeds:
            kwargs["seed"] = int(sampling.seed)  # one generator for the engine's life
        return kwargs

    def generate(self, jobs, sampling, on_batch):
        jobs = list(jobs)
        if not jobs:
            return
        if len(self.groups) == 1 and self.python is None:
            if self._engine is None:
                self._engine = make_engine(self.engine_factory, self.model_path, self._engine_kwargs(sampling))
                self.engine_starts += 1
            drive_engine(self._engine, self.tokenizer, self._shards(jobs)[0], sampling, self.stop_ids,
                         self.batch_size, on_batch, self.per_request_seeds)  # fmt: skip
            return
        self._generate_data_parallel(jobs, sampling, on_batch)

    def _start_workers(self, sampling: SamplingConfig) -> None:
        """One engine process per GPU group, started with ``subprocess`` (not multiprocessing: a
        spawned child would re-run the parent's ``__main__``, e.g. a Snakemake script); they
        serve every later call until :meth:`close`."""
        import subprocess
        import sys
        import tempfile

        from redi.runtime import worker_env

        self._workdir = Path(tempfile.mkdtemp(prefix="redi-vllm-dp-"))
        for rank, gpus in enumerate(self.groups):
            spec = {
                "model_path": self.model_path,
                "llm_kwargs": self._engine_kwargs(sampling),
                "engine": self.engine_factory,
                "stop_ids": list(self.stop_ids),
                "batch_size": self.batch_size,
                "per_request_seeds": self.per_request_seeds,
                "out": str(self._workdir / f"out-{rank}.jsonl"),
            }
            spec_path = self._workdir / f"spec-{rank}.json"
            spec_path.write_text(json.dumps(spec))
            Path(spec["out"]).touch()
            env = worker_env(CUDA_VISIBLE_DEVICES=",".join(gpus))
            err = open(self._workdir / f"stderr-{rank}.log", "wb")
            proc = subprocess.Popen(
                [self.python or sys.executable, "-m", "redi.eval.backends.vllm_backend", str(spec_path)],
                env=env, stdin=subprocess.PIPE, stdout=err, stderr=subprocess.STDOUT,
            )  # fmt: skip
            self._workers.append({"rank": rank, "proc": proc, "out": spec["out"], "pos": 0, "err": err,
                                  "log": self._workdir / f"stderr-{rank}.log"})  # fmt: skip
            self.engine_starts += 1

    def _generate_data_parallel(self, jobs, sampling, on_batch):
        if not self._workers:
            self._start_workers(sampling)
        self._calls += 1
        call = self._calls
        busy = []
        for w, shard in zip(self._workers, self._shards(jobs)):
            if not shard:
                continue
            msg = {"call": call, "jobs": [asdict(j) for j in shard], "sampling": asdict(sampling)}
            w["proc"].stdin.write((json.dumps(msg) + "\n").encode())
            w["proc"].stdin.flush()
            busy.append(w)
        done = set()
        while len(done) < len(busy):
            progressed = False
            for w in busy:
                if w["rank"] in done:
                    continue
                exited = w["proc"].poll() is not None
                with open(w["out"], "rb") as fh:
                    fh.seek(w["pos"])
                    data = fh.read()
                complete = data[: data.rfind(b"\n") + 1]
                w["pos"] += len(complete)
                for line in complete.decode("utf-8").splitlines():
                    msg = json.loads(line)
                    if msg.get("call") != call:
                        continue
                    if msg.get("done"):
                        done.add(w["rank"])
                        continue
                    on_batch([Generation(**g) for g in msg["generations"]], float(msg["seconds"]))
                    progressed = True
                if exited and w["rank"] not in done:
                    tail = Path(w["log"]).read_text(errors="replace")[-4000:]
                    self.close()
                    raise RuntimeError(f"vLLM worker {w['rank']} exited with {w['proc'].returncode}:\n{tail}")
            if not progressed and len(done) < len(busy):
                time.sleep(0.2)

    def close(self):
        """End the engines (workers get end-of-input and are killed if they do not exit)."""
        import subprocess

        for w in self._workers:
            try:
                if w["proc"].stdin:
                    w["proc"].stdin.close()
                w["proc"].wait(timeout=120)
            except (subprocess.TimeoutExpired, OSError):
                w["proc"].kill()
                w["proc"].wait()
            w["err"].close()
        self._workers = []
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None


if __name__ == "__main__":
    sys.exit(vllm_worker_main(sys.argv[1]))
