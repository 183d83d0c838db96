"""Sampling n responses per prompt: one interface, two backends chosen by config.

* ``transformers`` (default; CPU, CI): batched ``model.generate`` with the KV cache, left
  padding, prompts sorted by length (longest first, so memory trouble shows at once) with
  all samples of a prompt in the same batch, so padding stays small.
* ``vllm`` (GPU, its own environment): ``SamplingParams(n=...)``, one request per prompt,
  prefix caching, tensor parallel inside one engine and/or data parallel over groups of the
  job's GPUs (one engine subprocess per group, ``python -m redi.eval.generate SPEC``, with
  ``CUDA_VISIBLE_DEVICES`` set to its group). ``vllm`` is imported lazily, only where an
  engine is built.

Both produce the same :class:`Generation` records. ``text`` is the continuation after the
prompt (the prompt ends with the forced ``<think>\\n``), decoded from the generated ids with the
stop token cut off and special tokens kept (``</think>`` must survive even where a tokenizer
marks it special); ``length`` is the number of generated tokens without the stop token;
``finish_reason`` is ``"stop"`` (``<|im_end|>`` or EOS) or ``"length"`` (``max_new_tokens`` or the
model's context length).

Seeds: vLLM gets a per-request seed derived from (seed, problem id); its ``n`` children use
``seed + i`` (vLLM's own rule), and a job resumed at sample ``a`` asks for seed ``base + a``, so
a sample's randomness depends only on (seed, problem, sample index). The transformers backend
seeds torch once per batch from (seed, first row of the batch): reproducible for the same job
list, but a resumed run batches differently and so draws different (equally valid) samples.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger(__name__)

BACKENDS = ("transformers", "vllm")
FINISH_REASONS = ("stop", "length")
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 32768
    seed: int = 0

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 (sampling; greedy decoding is not pass@k)")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")


@dataclass(frozen=True)
class GenerationJob:
    """Samples ``sample_indices`` (contiguous) of one prompt."""

    problem_id: str
    prompt_ids: tuple[int, ...]
    sample_indices: tuple[int, ...]


@dataclass(frozen=True)
class Generation:
    problem_id: str
    sample_index: int
    text: str
    length: int
    finish_reason: str  # "stop" | "length"

    def to_dict(self) -> dict:
        return asdict(self)


# Called after every finished batch with its generations and the batch's wall seconds.
OnBatch = Callable[[list[Generation], float], None]


def stable_int(*parts, bits: int = 31) -> int:
    digest = hashlib.sha1(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % (1 << bits)


def request_seed(seed: int, problem_id: str) -> int:
    """Base seed of one prompt; sample ``i`` uses ``request_seed + i`` (kept below 2**31)."""
    return stable_int(seed, problem_id, bits=30)


def contiguous_runs(indices: Sequence[int]) -> list[tuple[int, ...]]:
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return [tuple(r) for r in runs]


def stop_token_ids(tokenizer, model_path: str | os.PathLike | None = None) -> list[int]:
    """``<|im_end|>``, ``<|endoftext|>`` (where the vocabulary has them), the tokenizer's EOS and
    the EOS ids of the model's generation config."""
    ids: list[int] = []

    def add(value):
        if value is None:
            return
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and int(v) >= 0 and int(v) not in ids:
                ids.append(int(v))

    vocab = tokenizer.get_vocab()
    for tok in STOP_TOKENS:
        if tok in vocab:
            add(vocab[tok])
    add(tokenizer.eos_token_id)
    if model_path is not None and Path(model_path, "generation_config.json").is_file():
        try:
            from transformers import GenerationConfig

            add(GenerationConfig.from_pretrained(model_path).eos_token_id)
        except Exception as exc:  # noqa: BLE001 - a broken generation config is not fatal
            log.warning("could not read generation_config.json of %s: %s", model_path, exc)
    if not ids:
        raise ValueError("no stop token: the tokenizer has neither <|im_end|> nor an EOS token")
    return ids


def finish(
    token_ids: Sequence[int], stop_ids: Sequence[int], tokenizer, finish_reason: str | None = None
) -> tuple[str, int, str]:
    """(text, length, finish_reason) from generated ids: cut at the first stop token.

    ``finish_reason`` from an engine (vLLM) is trusted when given; otherwise a row without a stop
    token ran out of tokens.
    """
    stops = set(stop_ids)
    ids = list(token_ids)
    cut = next((k for k, t in enumerate(ids) if t in stops), None)
    if cut is not None:
        ids = ids[:cut]
        reason = "stop"
    else:
        reason = "length"
    if finish_reason is not None:
        reason = "stop" if finish_reason == "stop" else "length"
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return text, len(ids), reason


class Backend(ABC):
    name: str = ""

    @abstractmethod
    def generate(
        self, jobs: Sequence[GenerationJob], sampling: SamplingConfig, on_batch: OnBatch
    ) -> None:
        """Generate every sample of every job, calling ``on_batch`` after each batch."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


# ----------------------------------------------------------------------------- transformers


class TransformersBackend(Backend):
    """Batched sampling with ``model.generate`` (KV cache) on CPU or one GPU.

    ``batch_size`` counts prompts per ``generate`` call, each with all its pending samples, so
    a batch holds ``batch_size x n`` sequences (as in vLLM, where it counts prompts per call).
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | os.PathLike,
        tokenizer=None,
        *,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.model_path = str(model_path)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(
            self.model_path, trust_remote_code=trust_remote_code
        )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None or dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        kwargs = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        self.model = AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs)
        self.model.to(self.device).eval()
        self.stop_ids = stop_token_ids(self.tokenizer, self.model_path)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.stop_ids[0]
        # Nothing from the checkpoint's generation_config.json (top_k, repetition_penalty,
        # min_p, ...) may leak into sampling: start from a clean config.
        self.model.generation_config = GenerationConfig(
            eos_token_id=self.stop_ids, pad_token_id=self.pad_id
        )
        self.batch_size = max(1, int(batch_size))

    def _generation_config(self, sampling: SamplingConfig):
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=True,
            temperature=float(sampling.temperature),
            top_p=float(sampling.top_p),
            top_k=0,  # disabled (transformers' default would be 50; vLLM's is off)
            repetition_penalty=1.0,
            max_new_tokens=int(sampling.max_new_tokens),
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
            use_cache=True,
            num_return_sequences=1,
        )

    def generate(self, jobs, sampling, on_batch):
        import torch

        ordered = sorted(jobs, key=lambda j: (-len(j.prompt_ids), j.prompt_ids, j.problem_id))
        config = self._generation_config(sampling)
        n_rows = sum(len(j.sample_indices) for j in ordered)
        done_rows = 0
        for start in range(0, len(ordered), self.batch_size):
            chunk = ordered[start : start + self.batch_size]
            batch = [(j.problem_id, i, j.prompt_ids) for j in chunk for i in j.sample_indices]
            t0 = time.perf_counter()
            width = max(len(r[2]) for r in batch)
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for k, (_, _, ids) in enumerate(batch):  # left padding
                input_ids[k, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention[k, width - len(ids) :] = 1
            torch.manual_seed(stable_int(sampling.seed, batch[0][0], batch[0][1], len(batch)))
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    generation_config=config,
                )
            new = out[:, width:].tolist()
            gens = []
            for (pid, idx, _), ids in zip(batch, new):
                text, length, reason = finish(ids, self.stop_ids, self.tokenizer)
                gens.append(Generation(pid, idx, text, length, reason))
            seconds = time.perf_counter() - t0
            done_rows += len(batch)
            log.info(
                "generated %d/%d samples: %d tokens in %.1fs",
                done_rows,
                n_rows,
                sum(g.length for g in gens),
                seconds,
            )
            on_batch(gens, seconds)

    def close(self):
        self.model = None


# ----------------------------------------------------------------------------- vLLM


def model_context_length(model_path: str | os.PathLike) -> int | None:
    """``max_position_embeddings`` of a saved model (``config.json``), or None if absent."""
    cfg = Path(model_path) / "config.json"
    if not cfg.is_file():
        return None
    data = json.loads(cfg.read_text())
    value = data.get("max_position_embeddings") or (data.get("text_config") or {}).get("max_position_embeddings")
    return int(value) if value else None


def generation_budget(
    prompt_lengths: Sequence[int], max_new_tokens: int, max_model_len: int | None, where: str = "evaluation"
) -> dict:
    """Check that every prompt gets its full ``max_new_tokens`` within ``max_model_len``.

    vLLM does not refuse ``max_tokens > max_model_len - prompt`` (it silently cuts the sample at
    ``max_model_len``), and a model keeps its own context length (4,096 for Qwen2.5-Math-1.5B)
    unless told otherwise: the recorded ``max_new_tokens`` would then not be what the samples had
    (issue 13, item 10). Returns the budget actually given, for the metrics.

    Raises:
        ValueError: naming ``where``, the longest prompt, the budget and the context.
    """
    longest = max((int(n) for n in prompt_lengths), default=0)
    if max_model_len is not None and longest + int(max_new_tokens) > int(max_model_len):
        raise ValueError(
            f"{where}: the longest prompt ({longest} tokens) + max_new_tokens ({int(max_new_tokens)}) "
            f"exceeds the context max_model_len ({int(max_model_len)}); the samples would be cut short "
            "silently. Lower evaluation.sampling.max_new_tokens (or the reference model's "
            "max_new_tokens), or raise max_model_len if the model's positions allow it."
        )
    return {
        "max_new_tokens": int(max_new_tokens),
        "max_model_len": None if max_model_len is None else int(max_model_len),
        "longest_prompt_tokens": longest,
    }


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
    """One data-parallel engine (``python -m redi.eval.generate SPEC``): its own process, started
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

    def __init__(
        self,
        model_path: str | os.PathLike,
        tokenizer=None,
        *,
        batch_size: int = 64,
        tensor_parallel_size: int | None = None,
        data_parallel_size: int | None = None,
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
                    [self.python or sys.executable, "-m", "redi.eval.generate", str(spec_path)],
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


def make_backend(
    name: str,
    model_path: str | os.PathLike,
    *,
    tokenizer=None,
    batch_size: int | None = None,
    trust_remote_code: bool = False,
    **options,
) -> Backend:
    """Build a backend by name; ``options`` go to its constructor (e.g. ``device``, ``dtype`` for
    transformers; ``tensor_parallel_size``, ``data_parallel_size`` (alias ``data_parallel``),
    ``max_model_len``, ``gpu_memory_utilization``, ``max_num_seqs``, ``enforce_eager`` for vLLM)."""
    options = dict(options)
    if name == "transformers":
        cls = TransformersBackend
    elif name == "vllm":
        cls = VLLMBackend
        if "data_parallel" in options:  # config spelling: an int, or true = every GPU group
            dp = options.pop("data_parallel")
            dp = None if dp is True else 1 if dp is False else dp
            options.setdefault("data_parallel_size", dp)
    else:
        raise ValueError(f"unknown generation backend {name!r}; expected one of {BACKENDS}")
    if batch_size is not None:
        options["batch_size"] = batch_size
    return cls(model_path, tokenizer, trust_remote_code=trust_remote_code, **options)


if __name__ == "__main__":
    import sys

    sys.exit(vllm_worker_main(sys.argv[1]))
