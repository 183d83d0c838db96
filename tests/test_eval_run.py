"""End-to-end evaluation on a tiny random Qwen2 (transformers backend), resume, and the vLLM
backend's logic against a stand-in ``vllm`` module (vLLM itself is not installed here)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pandas as pd
import psutil
import pytest

import redi.eval.run as run_mod
from helpers import save_tiny_student
from redi.eval.backends import TransformersBackend, make_backend
from redi.eval.backends.vllm_backend import plan_gpu_groups
from redi.eval.benchmarks import gold_response, load_benchmark
from redi.eval.generate import (
    Generation,
    GenerationJob,
    SamplingConfig,
    contiguous_runs,
    request_seed,
)
from redi.eval.run import evaluate

N_PROBLEMS = 5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_student(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    rows = [{"problem": f"What is {k} + {k}?", "answer": str(2 * k)} for k in range(N_PROBLEMS)]
    rows[1]["answer"] = 4.0  # number gold
    rows[2]["answer"] = ["4\n", "4.0"]  # list of alternatives
    path.write_text(json.dumps(rows))
    return path


def _eval(model_dir, bench, out, checkpoint="step-20", **settings):
    """evaluate() with small settings; ``settings`` are EvalConfig keys (sampling keys too)."""
    sampling = {k: settings.pop(k) for k in ("temperature", "top_p", "max_new_tokens", "seed") if k in settings}
    config = {"n_samples": 2, "batch_size": 2, "verify_timeout_s": 5.0, **settings,
              "sampling": {"max_new_tokens": 12, **sampling}}  # fmt: skip
    return evaluate(model_dir, "toy", bench, out, config, run="r", checkpoint=checkpoint, threads=1)


class Spy:
    """Wraps make_backend: counts generated samples; can fail after some batches (a kill)."""

    def __init__(self, fail_after=None):
        self.generated = []
        self.fail_after = fail_after
        self.calls = 0

    def __call__(self, *args, **kwargs):
        backend = make_backend(*args, **kwargs)
        spy = self
        inner = backend.generate

        def generate(jobs, sampling, on_batch):
            batches = 0

            def wrapped(gens, secs):
                nonlocal batches
                on_batch(gens, secs)
                spy.generated += [(g.problem_id, g.sample_index) for g in gens]
                batches += 1
                if spy.fail_after is not None and batches >= spy.fail_after:
                    raise KeyboardInterrupt("simulated kill")

            inner(jobs, sampling, wrapped)

        backend.generate = generate
        self.calls += 1
        return backend


def test_transformers_end_to_end(model_dir, bench, tmp_path):
    out = tmp_path / "r" / "step-20" / "toy"
    m = _eval(model_dir, bench, out)
    df = pd.read_parquet(out / "samples.parquet")
    assert list(df.columns) == [
        "problem_id",
        "sample_index",
        "text",
        "extracted",
        "correct",
        "status",
        "length",
        "finish_reason",
    ]
    assert len(df) == N_PROBLEMS * 2
    assert sorted(df.groupby("problem_id")["sample_index"].apply(list).tolist()) == [[0, 1]] * 5
    assert set(df["finish_reason"]) <= {"stop", "length"}
    assert df["length"].between(0, 12).all()
    assert ((df["finish_reason"] == "length") == (df["status"] == "truncated")).all()
    assert (df.loc[df["finish_reason"] == "length", "length"] == 12).all()
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    for key in (
        "run", "checkpoint", "step", "benchmark", "model_path", "n_problems", "n_samples",
        "pass@1", "sem", "pass@k", "mean_length", "median_length", "truncated", "timeouts",
        "no_answer", "wall_seconds", "generated_tokens", "tokens_per_second", "backend",
    ):  # fmt: skip
        assert key in m, key
    assert (m["run"], m["checkpoint"], m["step"], m["benchmark"]) == ("r", "step-20", 20, "toy")
    assert (m["n_problems"], m["n_samples"], m["backend"]) == (5, 2, "transformers")
    assert set(m["pass@k"]) == {"1", "2"} and 0 <= m["pass@1"] <= 1
    assert m["generated_tokens"] == int(df["length"].sum())
    assert m["truncated"] == int((df["finish_reason"] == "length").sum())
    csv = pd.read_csv(out / "metrics.csv")
    assert len(csv) == 1 and csv.loc[0, "pass@2"] == pytest.approx(m["pass@k"]["2"])


def test_resume_after_kill_reuses_finished_work(model_dir, bench, tmp_path, monkeypatch):
    out = tmp_path / "ev"
    killer = Spy(fail_after=1)
    monkeypatch.setattr(run_mod, "make_backend", killer)
    with pytest.raises(KeyboardInterrupt):
        _eval(model_dir, bench, out)
    first = set(killer.generated)
    assert len(first) == 4  # one batch: 2 prompts x 2 samples
    assert not (out / "samples.parquet").exists() and not (out / "metrics.json").exists()
    journal = out / "generations.jsonl"
    kept = {
        (r["problem_id"], r["sample_index"]): r["text"]
        for r in map(json.loads, journal.read_text().splitlines())
    }
    with open(journal, "a") as fh:  # a line torn by the kill
        fh.write('{"problem_id": "tor')

    spy = Spy()
    monkeypatch.setattr(run_mod, "make_backend", spy)
    m = _eval(model_dir, bench, out)
    assert len(spy.generated) == 10 - 4 and not first & set(spy.generated)
    assert m["reused_samples"] == 4
    df = pd.read_parquet(out / "samples.parquet")
    for (pid, idx), text in kept.items():
        assert df[(df.problem_id == pid) & (df.sample_index == idx)]["text"].item() == text

    again = Spy()
    monkeypatch.setattr(run_mod, "make_backend", again)
    m2 = _eval(model_dir, bench, out)  # everything done: no backend at all
    assert again.calls == 0 and m2["pass@1"] == m["pass@1"]

    more = Spy()
    monkeypatch.setattr(run_mod, "make_backend", more)
    m3 = _eval(model_dir, bench, out, n_samples=3)  # only the new sample index is generated
    assert sorted({i for _, i in more.generated}) == [2] and len(more.generated) == 5
    assert set(m3["pass@k"]) == {"1", "2", "3"}

    other = Spy()
    monkeypatch.setattr(run_mod, "make_backend", other)
    _eval(model_dir, bench, out, temperature=0.9)  # other sampling: nothing re-used
    assert len(other.generated) == 10
    assert (out / "generations.jsonl.stale").exists()


class ScriptedBackend:
    """Sample 0 answers with the gold, sample 1 with a wrong number, sample 2 never closes."""

    name = "scripted"

    def __init__(self, problems):
        self.golds = {p.problem_id: p.gold for p in problems}

    def generate(self, jobs, sampling, on_batch):
        gens = []
        for job in jobs:
            for i in job.sample_indices:
                gold = self.golds[job.problem_id]
                text = {
                    0: gold_response(gold)[len("<think>\n") :],
                    1: gold_response("12345")[len("<think>\n") :],
                }.get(i, "I keep thinking")
                gens.append(Generation(job.problem_id, i, text, 7, "stop"))
        on_batch(gens, 0.5)

    def close(self):
        pass


def test_scoring_path_with_scripted_backend(model_dir, bench, tmp_path, monkeypatch):
    problems = load_benchmark(bench)
    monkeypatch.setattr(run_mod, "make_backend", lambda *a, **k: ScriptedBackend(problems))
    m = _eval(model_dir, bench, tmp_path / "s", n_samples=3, checkpoint="final")
    assert m["step"] is None
    assert m["pass@1"] == pytest.approx(1 / 3)
    assert m["per_sample_pass@1"] == [1.0, 0.0, 0.0]
    assert m["pass@k"]["2"] == pytest.approx(2 / 3) and m["pass@k"]["3"] == 1.0
    assert m["status_counts"] == {"no_think_close": 5, "ok": 10}
    assert m["tokens_per_second"] == pytest.approx(7 * 15 / 0.5)


def test_generation_helpers():
    assert contiguous_runs([5, 0, 1, 3, 2, 7]) == [(0, 1, 2, 3), (5,), (7,)]
    assert plan_gpu_groups([], None, None) == [[]]
    assert plan_gpu_groups(["0", "1", "2", "3"], None, None) == [["0"], ["1"], ["2"], ["3"]]
    assert plan_gpu_groups(["0", "1", "2", "3"], 2, None) == [["0", "1"], ["2", "3"]]
    assert plan_gpu_groups(["0", "1", "2", "3"], 4, None) == [["0", "1", "2", "3"]]
    assert plan_gpu_groups(["0", "1", "2", "3"], 1, 2) == [["0"], ["1"]]
    with pytest.raises(ValueError):
        plan_gpu_groups(["0"], 2, None)
    with pytest.raises(ValueError):
        SamplingConfig(temperature=0)
    assert request_seed(0, "a") != request_seed(0, "b") and request_seed(1, "a") < 2**30
    with pytest.raises(ValueError):
        make_backend("nope", "x", batch_size=1)


def test_transformers_backend_stops_on_im_end(model_dir):
    """Stop ids cover <|im_end|> and EOS; a stop token ends the text and is not counted."""
    backend = TransformersBackend(model_dir, batch_size=4)
    tok = backend.tokenizer
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    assert set(backend.stop_ids) == {im_end, eos}
    from redi.eval.generate import finish

    ids = tok("ok</think> 2", add_special_tokens=False)["input_ids"]
    assert finish(ids + [im_end, 5, 6], backend.stop_ids, tok) == ("ok</think> 2", len(ids), "stop")
    assert finish(ids, backend.stop_ids, tok)[2] == "length"


@pytest.fixture(scope="module")
def peaked_model_dir(tmp_path_factory):
    """A tiny student with larger weights (init std 0.2): the default init attends almost
    uniformly, so a wrong position or a cache row copied to the wrong sample would hardly move
    its logits (a one-off position error passed against it)."""
    return save_tiny_student(tmp_path_factory.mktemp("tiny-qwen2-peaked"), init_std=0.2)


def test_prompt_prefilled_once_samples_what_generate_samples(peaked_model_dir):
    """Sharing each prompt's KV cache among its samples (the default) samples the same tokens as
    ``model.generate``'s own prefill of every copy: prompts of different lengths (left
    padding), a resumed prompt, a prompt with one sample, one with none, a batch that holds no
    shared prompt. The shared path really runs: its first forward has a row per prompt."""
    tok = TransformersBackend(peaked_model_dir, batch_size=1).tokenizer
    prompts = [tok(f"What is {k} plus {k * 7}? Think step by step." * (1 + k % 3),
                   add_special_tokens=False)["input_ids"] for k in range(6)]  # fmt: skip
    jobs = [
        GenerationJob("a", tuple(prompts[0]), (0, 1, 2, 3)),
        GenerationJob("b", tuple(prompts[1]), (2, 3)),  # resumed: samples 2 and 3 only
        GenerationJob("c", tuple(prompts[2]), (0,)),
        GenerationJob("d", tuple(prompts[3]), (0, 1, 2)),
        GenerationJob("e", tuple(prompts[4]), (5, 6, 7)),
        GenerationJob("f", tuple(prompts[5]), ()),  # nothing left to sample
    ]
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=24, seed=3)
    texts, first_forward = {}, {}
    for once in (True, False):
        for batch_size in (2, 6):
            backend = TransformersBackend(peaked_model_dir, batch_size=batch_size, prefill_once=once)
            shapes: list = []
            backend.model.model.embed_tokens.register_forward_hook(
                lambda _m, args, _out, shapes=shapes: shapes.append(tuple(args[0].shape)))
            got: list = []
            backend.generate(jobs, sampling, lambda gens, _secs, got=got: got.extend(gens))
            texts[once, batch_size] = sorted((g.problem_id, g.sample_index, g.text, g.length) for g in got)
            first_forward[once, batch_size] = shapes[0]
    for batch_size in (2, 6):
        assert len(texts[True, batch_size]) == 13
        assert texts[True, batch_size] == texts[False, batch_size]
    assert len({t[2] for t in texts[True, 6]}) > 10  # real sampling, not one repeated text
    width = max(len(p) for p in prompts[:5])
    assert first_forward[True, 6] == (5, width - 1)  # five prompts with samples, once each
    assert first_forward[False, 6] == (13, width)  # generate's own prefill: every sample


FAKE_VLLM = textwrap.dedent(
    '''
    """Stand-in for vllm: records engines and sampling params; answers deterministically."""
    import os

    ENGINES = []
    PARAMS = []


    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)
            PARAMS.append(kw)


    class _Completion:
        def __init__(self, index, token_ids, finish_reason):
            self.index, self.token_ids, self.finish_reason = index, token_ids, finish_reason


    class _Request:
        def __init__(self, outputs):
            self.outputs = outputs


    class LLM:
        def __init__(self, model, **kw):
            from transformers import AutoTokenizer

            self.kw = dict(kw, model=model, gpus=os.environ.get("CUDA_VISIBLE_DEVICES"))
            self.tok = AutoTokenizer.from_pretrained(model)
            ENGINES.append(self.kw)

        def generate(self, prompts, params, use_tqdm=True):
            assert len(prompts) == len(params)
            out = []
            for prompt, p in zip(prompts, params):
                assert isinstance(prompt["prompt_token_ids"], list)
                comps = []
                for i in range(p.n):
                    seed = p.seed + i  # vLLM's rule for the n children
                    if seed % 2:
                        text = f"s{seed} gpu={self.kw['gpus']}</think> \\\\boxed{{{seed}}}"
                        ids = self.tok(text, add_special_tokens=False)["input_ids"]
                        comps.append(_Completion(i, ids + [p.stop_token_ids[0]], "stop"))
                    else:
                        comps.append(_Completion(i, [65] * p.max_tokens, "length"))
                out.append(_Request(comps))
            return out
    '''
)


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch):
    pkg = tmp_path / "fakevllm" / "vllm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_VLLM)
    monkeypatch.syspath_prepend(str(pkg.parent))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    import vllm

    yield vllm
    monkeypatch.delitem(sys.modules, "vllm", raising=False)


def test_vllm_backend_single_engine(model_dir, fake_vllm, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    backend = make_backend(
        "vllm", model_path=model_dir, batch_size=2, gpus=["0", "1"], tensor_parallel_size=2
    )
    tok = backend.tokenizer
    jobs = [
        GenerationJob("a", (1, 2, 3), (0, 1, 2)),
        GenerationJob("b", (1, 2), (2, 3)),  # resumed: samples 2 and 3 only
        GenerationJob("c", (1, 2, 3, 4), (0,)),
    ]
    sampling = SamplingConfig(max_new_tokens=5, seed=3)
    got = []
    backend.generate(jobs, sampling, lambda gens, secs: got.append(gens))
    assert [len(b) for b in got] == [4, 2]  # 2 prompts per generate call
    engine = fake_vllm.ENGINES[-1]
    assert engine["enable_prefix_caching"] is True and engine["tensor_parallel_size"] == 2
    params = {p["seed"]: p for p in fake_vllm.PARAMS}
    assert set(params) == {request_seed(3, pid) + first for pid, first in [("a", 0), ("b", 2), ("c", 0)]}
    for p in params.values():
        assert (p["temperature"], p["top_p"], p["max_tokens"]) == (sampling.temperature, sampling.top_p, 5)
        assert set(p["stop_token_ids"]) == {
            tok.convert_tokens_to_ids("<|im_end|>"),
            tok.convert_tokens_to_ids("<|endoftext|>"),
        }
    gens = {(g.problem_id, g.sample_index): g for batch in got for g in batch}
    assert set(gens) == {("a", 0), ("a", 1), ("a", 2), ("b", 2), ("b", 3), ("c", 0)}
    for (pid, idx), g in gens.items():
        seed = request_seed(3, pid) + idx  # a sample's seed depends only on (seed, problem, index)
        if seed % 2:
            assert g.finish_reason == "stop"
            assert g.text == f"s{seed} gpu=0,1</think> \\boxed{{{seed}}}"
        else:
            assert (g.finish_reason, g.length) == ("length", 5)


def test_vllm_backend_data_parallel(model_dir, fake_vllm, monkeypatch):
    """Two engine processes, one GPU each; all samples come back exactly once."""
    monkeypatch.setenv("PYTHONPATH", str(Path(fake_vllm.__file__).parents[1]))
    backend = make_backend("vllm", model_path=model_dir, batch_size=2, gpus=["0", "1"], data_parallel=True)
    assert backend.groups == [["0"], ["1"]]
    jobs = [GenerationJob(f"p{k}", tuple(range(1, 2 + k)), (0, 1)) for k in range(5)]
    got = []
    try:
        backend.generate(jobs, SamplingConfig(max_new_tokens=4), lambda gens, secs: got.extend(gens))
    finally:
        backend.close()  # the engine processes live until the backend is closed
    assert psutil.Process().children(recursive=True) == [], "close() left engine processes behind"
    assert sorted((g.problem_id, g.sample_index) for g in got) == sorted(
        (f"p{k}", i) for k in range(5) for i in (0, 1)
    )
    gpus = {g.text.split("gpu=")[1].split("<")[0] for g in got if g.finish_reason == "stop"}
    assert gpus == {"0", "1"}  # each engine saw only its own GPU


def test_held_out_halves_are_evaluated_apart(model_dir, bench, tmp_path):
    """With a split, a job sees only its half of the benchmark (selection on one, report on the
    other) and its metrics.json says which; a benchmark the split does not name is used whole."""
    from redi.eval.benchmarks import split_half

    problems = load_benchmark(bench)
    halves = {}
    for part in ("selection", "report"):
        out = tmp_path / part
        m = _eval(model_dir, bench, out, n_samples=1, max_new_tokens=4, split={"toy": part})
        halves[part] = set(pd.read_parquet(out / "samples.parquet")["problem_id"])
        assert m["split"] == part and m["provenance"]["config"]["split"] == part
        assert m["n_problems"] == len(halves[part]) == len(split_half(problems, part))
    assert not halves["selection"] & halves["report"]
    assert halves["selection"] | halves["report"] == {p.problem_id for p in problems}
    whole = _eval(model_dir, bench, tmp_path / "other", n_samples=1, max_new_tokens=4, split={"math500": "report"})
    assert whole["split"] is None and whole["n_problems"] == N_PROBLEMS
