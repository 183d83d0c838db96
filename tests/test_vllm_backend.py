"""The vLLM backend's own logic, on the CPU: engines kept for the backend's life (in process and as
data-parallel worker processes), every prompt of a call submitted before the engine steps, the
journal's batches, and per-request seeds as an option.

vLLM itself cannot run here (it needs a GPU and its own environment), so the engine is a
vLLM-shaped one (the backend's engine protocol: ``submit`` / ``step`` / ``has_unfinished``)
that samples with a real transformers model; :class:`redi.eval.backends.vllm_backend.VLLMEngine`,
the protocol on vLLM's offline engine, is what only a GPU run (``bench/gpu_check``,
``generate_vllm``) exercises."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import save_tiny_student
from redi.eval.backends.vllm_backend import VLLMBackend
from redi.eval.generate import GenerationJob, SamplingConfig, request_seed

TESTS = Path(__file__).resolve().parent
EVENTS = "REDI_TEST_ENGINE_EVENTS"


class TransformersEngine:
    """The engine protocol on ``transformers``: each ``step`` finishes one request (its ``n``
    samples drawn with ``torch.manual_seed(seed)``), so finished requests arrive one by one as in
    vLLM. Events (start, submit, step) go to the file named by ``$REDI_TEST_ENGINE_EVENTS``."""

    def __init__(self, model_path, llm_kwargs):
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_path).eval()
        self.llm_kwargs = llm_kwargs
        self.queue: list = []
        self._event("start", seed=llm_kwargs.get("seed"))

    def _event(self, kind, **fields):
        with open(os.environ[EVENTS], "a") as fh:
            fh.write(json.dumps({"kind": kind, "pid": os.getpid(), **fields}) + "\n")

    def submit(self, request_id, prompt_ids, n, seed, sampling, stop_ids):
        self.queue.append((request_id, list(prompt_ids), n, seed, sampling, list(stop_ids)))
        self._event("submit", request=request_id, seed=seed, n=n)

    def has_unfinished(self):
        return bool(self.queue)

    def step(self):
        import torch

        request_id, ids, n, seed, sampling, stop_ids = self.queue.pop(0)
        self._event("step", request=request_id, waiting=len(self.queue))
        torch.manual_seed(seed if seed is not None else self.llm_kwargs.get("seed", 0))
        with torch.inference_mode():
            out = self.model.generate(
                torch.tensor([ids]), do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                max_new_tokens=sampling.max_new_tokens, num_return_sequences=n, eos_token_id=stop_ids,
                pad_token_id=stop_ids[0],
            )  # fmt: skip
        completions = []
        for i, row in enumerate(out[:, len(ids) :].tolist()):
            cut = next((k for k, t in enumerate(row) if t in stop_ids), None)
            completions.append((i, row if cut is None else row[: cut + 1], "length" if cut is None else "stop"))
        return [(request_id, completions)]

    def close(self):
        self.model = None


class EngineBackend(VLLMBackend):
    engine_factory = "test_vllm_backend:TransformersEngine"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(save_tiny_student(tmp_path_factory.mktemp("m") / "model", init_std=0.2))


@pytest.fixture
def events(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    path.touch()
    monkeypatch.setenv(EVENTS, str(path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))

    def read():
        return [json.loads(line) for line in path.read_text().splitlines()]

    return read


def _jobs(tokenizer, k=5, samples=(0, 1)):
    ids = tuple(tokenizer("Compute 1 + 1.", add_special_tokens=False)["input_ids"])
    return [GenerationJob(f"p{i}", ids[: 3 + i], tuple(samples)) for i in range(k)]


SAMPLING = SamplingConfig(max_new_tokens=6, seed=3)


def _collect(backend, jobs):
    batches = []
    backend.generate(jobs, SAMPLING, lambda gens, s: batches.append(gens))
    return batches


def test_all_prompts_submitted_at_once_and_journalled_in_batches(model, events):
    backend = EngineBackend(model, batch_size=2, gpus=[])
    jobs = _jobs(backend.tokenizer, k=5, samples=(2, 3))  # a resumed job: samples 2 and 3
    batches = _collect(backend, jobs)
    ev = events()
    kinds = [e["kind"] for e in ev]
    assert kinds.count("start") == 1 and kinds.count("submit") == 5
    assert kinds.index("step") > max(i for i, k in enumerate(kinds) if k == "submit")  # all sent first
    assert ev[kinds.index("step")]["waiting"] == 4  # the engine held every request at its first step
    assert [len({g.problem_id for g in b}) for b in batches] == [2, 2, 1]  # journal granularity
    got = sorted((g.problem_id, g.sample_index) for b in batches for g in b)
    assert got == sorted((j.problem_id, i) for j in jobs for i in (2, 3))
    seeds = {e["request"]: e["seed"] for e in ev if e["kind"] == "submit"}
    assert sorted(seeds.values()) == sorted(request_seed(3, j.problem_id) + 2 for j in jobs)
    backend.close()


def test_one_engine_for_many_calls(model, events):
    backend = EngineBackend(model, batch_size=4, gpus=[])
    for _ in range(3):  # e.g. three benchmarks of a grouped evaluation
        assert sum(len(b) for b in _collect(backend, _jobs(backend.tokenizer, k=2))) == 4
    assert backend.engine_starts == 1 and [e["kind"] for e in events()].count("start") == 1
    backend.close()


def test_engine_seed_option(model, events):
    backend = EngineBackend(model, batch_size=4, gpus=[], per_request_seeds=False)
    _collect(backend, _jobs(backend.tokenizer, k=2))
    ev = events()
    assert {e["seed"] for e in ev if e["kind"] == "submit"} == {None}
    assert [e["seed"] for e in ev if e["kind"] == "start"] == [3]  # the engine is seeded once
    backend.close()


def test_data_parallel_workers_live_for_the_backends_life(model, events):
    backend = EngineBackend(model, batch_size=1, gpus=["0", "1"], data_parallel_size=2)
    single = EngineBackend(model, batch_size=8, gpus=[])
    jobs = _jobs(backend.tokenizer, k=4)
    first = _collect(backend, jobs)
    pids = [w["proc"].pid for w in backend._workers]
    second = _collect(backend, jobs)
    assert [w["proc"].pid for w in backend._workers] == pids and len(pids) == 2
    assert backend.engine_starts == 2
    starts = [e for e in events() if e["kind"] == "start"]
    assert sorted(e["pid"] for e in starts if e["pid"] != os.getpid()) == sorted(pids)  # one start each

    def texts(batches):
        return sorted((g.problem_id, g.sample_index, g.text) for b in batches for g in b)

    # per-request seeds: the same samples however the prompts are split over engines, call after call
    assert texts(first) == texts(second) == texts(_collect(single, jobs))
    workdir, procs = backend._workdir, [w["proc"] for w in backend._workers]
    backend.close()
    single.close()
    assert all(p.returncode == 0 for p in procs) and not workdir.exists() and backend._workers == []


FAKE_VLLM = '''
"""vLLM's offline surface as VLLMEngine uses it: LLM(...).llm_engine.add_request / step /
has_unfinished_requests; finished outputs carry the engine's own id (ours + a suffix)."""


class SamplingParams:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Out:
    def __init__(self, request_id, outputs):
        self.request_id, self.outputs, self.finished = request_id, outputs, True


class _Completion:
    def __init__(self, index, token_ids, finish_reason):
        self.index, self.token_ids, self.finish_reason = index, token_ids, finish_reason


class _Engine:
    def __init__(self):
        self.queue, self.steps, self.added_before_first_step = [], 0, None

    def add_request(self, request_id, prompt, params):
        self.queue.append((request_id + "-0a1b", prompt, params))

    def has_unfinished_requests(self):
        return bool(self.queue)

    def step(self):
        if self.added_before_first_step is None:
            self.added_before_first_step = len(self.queue)
        rid, prompt, params = self.queue.pop()
        return [_Out(rid, [_Completion(i, [7] * params.max_tokens, "length") for i in range(params.n)])]


class LLM:
    def __init__(self, model, **kw):
        self.llm_engine = _Engine()
'''


def test_vllm_engine_steps_its_offline_engine(model, tmp_path, monkeypatch):
    """``VLLMEngine`` on vLLM's stepping surface: all requests added before the first step, ids
    mapped back, samples complete (a stand-in vllm module: vLLM itself needs a GPU)."""
    import sys

    from redi.eval.backends.vllm_backend import VLLMEngine

    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text(FAKE_VLLM)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    backend = VLLMBackend(model, batch_size=2, gpus=[])
    jobs = _jobs(backend.tokenizer, k=3)
    got = _collect(backend, jobs)
    assert isinstance(backend._engine, VLLMEngine)
    assert backend._engine.llm.llm_engine.added_before_first_step == 3
    assert sorted((g.problem_id, g.sample_index, g.length) for b in got for g in b) == sorted(
        (j.problem_id, i, 6) for j in jobs for i in (0, 1)
    )
    backend.close()
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
