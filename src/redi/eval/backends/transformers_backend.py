"""The ``transformers`` backend: batched ``model.generate`` with the KV cache (CPU, CI, one GPU).

Left padding; prompts sorted by length (longest first, so memory trouble shows at once) with
all samples of a prompt in the same batch, so padding stays small. Each prompt is prefilled
once and its KV cache copied to its samples (``model.generate`` would prefill every sample's
copy: 4-8x the prompt work). Nothing from the checkpoint's ``generation_config.json``
leaks into sampling (top-k stays off, as in vLLM).
"""

from __future__ import annotations

import logging
import os
import time

from redi.eval.generate import Backend, Generation, SamplingConfig, finish, stable_int, stop_token_ids

log = logging.getLogger(__name__)


class TransformersBackend(Backend):
    """Batched sampling with ``model.generate`` (KV cache) on CPU or one GPU.

    ``batch_size`` counts prompts per ``generate`` call, each with all its pending samples, so
    a batch holds ``batch_size x n`` sequences (as in vLLM, where it counts prompts per call).
    """

    name = "transformers"
    group_per_run = True  # a job's start (Python, torch, transformers) costs more than a tiny eval

    def __init__(
        self,
        model_path: str | os.PathLike,
        tokenizer=None,
        *,
        batch_size: int,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        prefill_once: bool = True,
    ):
        """``prefill_once``: prefill each prompt once and share its KV cache among its samples
        (the same sampled tokens up to float rounding: the prompt's attention runs in a smaller
        batch; ~20 % faster on the CPU demo); false: ``model.generate`` prefills
        every sample (transformers' own path)."""
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
        self.prefill_once = bool(prefill_once)

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
            input_ids, attention = input_ids.to(self.device), attention.to(self.device)
            with torch.inference_mode():
                cache = self._shared_prompt_cache(chunk, input_ids, attention)
                out = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    past_key_values=cache,
                    generation_config=config,
                )
            new = out[:, width:].tolist()
            gens = []
            for (pid, idx, _), ids in zip(batch, new):
                text, length, reason = finish(ids, self.stop_ids, self.tokenizer)
                gens.append(Generation(pid, idx, text, length, reason))
            seconds = time.perf_counter() - t0
            done_rows += len(batch)
            log.debug(  # the job's progress line (redi.progress, through on_batch) reports it
                "generated %d/%d samples: %d tokens in %.1fs",
                done_rows,
                n_rows,
                sum(g.length for g in gens),
                seconds,
            )
            on_batch(gens, seconds)

    def _shared_prompt_cache(self, chunk, input_ids, attention):
        """The KV cache of every row's prompt but its last token, each prompt computed once.

        ``input_ids``/``attention``: (rows, width), left-padded, one row per sample in ``chunk``
        order. Returns a ``DynamicCache`` over (rows, width - 1) positions, or None (no prompt
        has two samples in this batch, or ``prefill_once`` is off): ``model.generate`` then
        prefills every row itself. Given the cache, ``generate`` runs only the last prompt
        token (transformers restarts from a cache when ``input_ids`` holds the full sequence);
        positions follow the attention mask as ``generate`` computes them.
        """
        import torch
        from transformers import DynamicCache

        counts = [len(j.sample_indices) for j in chunk if j.sample_indices]
        if not self.prefill_once or not counts or max(counts) < 2 or input_ids.shape[1] < 2:
            return None
        first = torch.tensor([0, *counts[:-1]], device=input_ids.device).cumsum(0)  # a row per prompt
        ids, mask = input_ids[first, :-1], attention[first, :-1]
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache(config=self.model.config)
        self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=True, logits_to_keep=1)  # fmt: skip
        cache.batch_select_indices(
            torch.repeat_interleave(torch.arange(len(counts), device=input_ids.device),
                                    torch.tensor(counts, device=input_ids.device))  # fmt: skip
        )
        return cache

    def close(self):
        self.model = None
