"""From curated JSONL to model-ready batches: tokenisation, batch order, padding or packing.

Tokenisation (the student's own chat template, through :mod:`redi.chat_template`):

* prompt ids = the generation prompt (``add_generation_prompt=True``), message contents encoded
  as plain text (a special-token string inside a problem is ordinary tokens) between the
  template's own control tokens;
* response ids = THE response as trained (:func:`redi.chat_template.response_ids`): the assistant
  content as plain text + the end-of-turn token the template closes a turn with (learned from the
  template: ``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama-3). Curation's length filter
  counts the same thing. What the template writes after that token (Qwen's ``"\\n"``) is not a
  response token: generation stops at the end-of-turn token;
* every row is checked: the template's own rendering of the conversation must equal prompt +
  response, as text and as ids; rows it rewrites (DeepSeek-R1-Distill's template keeps only the
  text after ``</think>``; Qwen3's inserts an empty think block) stop the run with
  :class:`ChatTemplateError` naming how many and which;
* truncation: SFT keeps the first ``max_length`` tokens of prompt + response; pairs keep the
  last ``max_prompt_length`` prompt tokens and the first ``max_response_length`` tokens of each
  response. No example is ever dropped (the step count depends on the row count, see
  ``schedule.py``); truncations are counted and reported.

Batch order (:class:`GlobalBatchSampler`): each epoch is a seeded permutation (``seed``,
``epoch``) cut into global batches (one optimizer step each); inside a global batch, examples are
sorted by length (longest first) and cut into micro-batches of ``per_device_batch_size``. Which
examples form a step therefore does not depend on micro-batching, padding or world size, and
sorting inside the step only reduces padding. Micro-batch ``j`` of a step goes to device
``j % world_size`` (accelerate's ``BatchSamplerShard``).

Layouts (:class:`Collator`): *padded* (right padding, ``attention_mask``; pairs put the chosen
rows first, then the rejected rows) or *padding-free* (all rows of the micro-batch packed in one
row with restarting ``position_ids`` and no mask, which FlashAttention-2 varlen reads as
sequence boundaries and transformers' sdpa/eager masks honour too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from redi.chat_template import (
    ChatTemplateError,
    check_rendering,
    end_of_turn,
    end_of_turn_id,
    prompt_ids,
    response_ids,
    spelled_controls,
    template_name,
)
from redi.files import atomic_path

log = logging.getLogger(__name__)

TOKENIZE_BATCH = 256
__all__ = ["ChatTemplateError", "tokenize_records", "load_tokenized"]


# ----------------------------------------------------------------------------------------------
# Reading and tokenising


def read_records(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``.jsonl`` (or ``.json`` list / ``.parquet``) data file."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _end_of_turn_id(tokenizer) -> int:
    """The template's end-of-turn id (:func:`redi.chat_template.end_of_turn`)."""
    return end_of_turn_id(tokenizer)


def check_template_keeps_content(tokenizer, conversations: list[list[dict]], ids: list[str],
                                 prompts: list[np.ndarray], responses: list[np.ndarray]) -> dict:  # fmt: skip
    """Render every conversation with the chat template and require it to equal prompt +
    response as trained (:func:`redi.chat_template.check_rendering`: the content verbatim, closed
    by the end-of-turn token, and the same ids). Returns ``{"rows_checked": n,
    "rows_rewritten": 0}`` for the summary.

    Raises:
        ChatTemplateError: some rows differ; the message names the template, how many rows, the
            first rows by id with what the template wrote, and the fix (a template that rewrites
            assistant turns: DeepSeek-R1-Distill's keeps only the text after ``</think>``,
            Qwen3's inserts an empty think block before a turn without ``</think>``).
    """
    bad = check_rendering(tokenizer, conversations, prompts, responses, ids)
    if bad:
        shown = "; ".join(f"example {b.example!r}: {b.detail}" for b in bad[:3])
        raise ChatTemplateError(
            f"{template_name(tokenizer)} does not keep the assistant content of {len(bad)} of {len(ids)} "
            f"rows ({shown}). Training learns each content as written followed by "
            f"{end_of_turn(tokenizer)[0]}, while this template renders those turns otherwise "
            "(a DeepSeek-R1-Distill-style template drops the reasoning before </think>; Qwen3's inserts an "
            "empty think block before a turn without </think>). Fix: set `student.chat_template` to a "
            "Jinja file whose assistant turn writes the content unchanged (e.g. the base model's "
            "Qwen2.5 template) and prepare the student again."
        )
    return {"rows_checked": len(ids), "rows_rewritten": 0}


@dataclass
class TokenizedData:
    """Token ids of every example (int32 arrays), in file order."""

    ids: list[str]
    prompts: list[np.ndarray]
    chosen: list[np.ndarray]
    rejected: list[np.ndarray] | None = None
    ref_chosen: np.ndarray | None = None  # dpo reference sums (float64), aligned with ids
    ref_rejected: np.ndarray | None = None
    stats: dict = field(default_factory=dict)
    row_values: dict = field(default_factory=dict)  # name -> float64 [examples]: numbers a loss
    #   reads from the data rows (attach_row_values), aligned with ids

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def pairwise(self) -> bool:
        return self.rejected is not None

    def lengths(self) -> np.ndarray:
        """Longest row of each example (the padded length it needs)."""
        p = np.array([len(x) for x in self.prompts])
        c = np.array([len(x) for x in self.chosen])
        if self.rejected is None:
            return p + c
        return p + np.maximum(c, np.array([len(x) for x in self.rejected]))


def tokenize_records(records: list[dict], tokenizer, cfg) -> TokenizedData:
    """Tokenise SFT rows (``messages``) or pair rows (``prompt``/``chosen``/``rejected``).

    Prompt ids: :func:`redi.chat_template.prompt_ids` (contents as plain text between the
    template's control tokens); each response: :func:`redi.chat_template.response_ids` (the
    content as plain text + the end-of-turn id): the definition curation's length filter counts
    in. Every row is checked against the template (:func:`check_template_keeps_content`).

    ``stats``: ``examples``, ``rows_checked``, ``rows_rewritten`` (0: a rewritten row stops the
    run), ``examples_spelling_control_tokens`` (their contents encoded as text), the truncation counts and, by
    their own names, responses whose end-of-turn token a cut removed
    (``{chosen,rejected,sft}_end_of_turn_cut``).
    """
    pairwise = cfg.is_pairwise
    eot_text, eot = end_of_turn(tokenizer)
    ids, prompt_msgs, resp_a, resp_b = [], [], [], []
    for i, r in enumerate(records):
        ex_id = str(r.get("id", i))
        ids.append(ex_id)
        if pairwise:
            for key in ("prompt", "chosen", "rejected"):
                if key not in r:
                    raise ValueError(f"objective {cfg.objective!r} needs pair rows; row {ex_id!r} has no {key!r}")
            prompt_msgs.append(list(r["prompt"]))
            for key, out in (("chosen", resp_a), ("rejected", resp_b)):
                turn = list(r[key])
                if len(turn) != 1 or turn[0].get("role") != "assistant":
                    raise ValueError(f"row {ex_id!r}: {key!r} must be one assistant turn")
                out.append(turn[0])
        else:
            if "messages" not in r:
                raise ValueError(f"objective 'sft' needs rows with 'messages'; row {ex_id!r} has none")
            msgs = list(r["messages"])
            if not msgs or msgs[-1].get("role") != "assistant":
                raise ValueError(f"row {ex_id!r}: messages must end with an assistant turn")
            prompt_msgs.append(msgs[:-1])
            resp_a.append(msgs[-1])
    if len(set(ids)) != len(ids):
        raise ValueError("example ids are not unique")
    prompts = prompt_ids(tokenizer, prompt_msgs, ids)
    chosen = response_ids(tokenizer, [str(m.get("content") or "") for m in resp_a])
    stats = {"examples": len(ids)}
    stats.update(check_template_keeps_content(tokenizer, [p + [m] for p, m in zip(prompt_msgs, resp_a)], ids,
                                              prompts, chosen))  # fmt: skip
    rejected = None
    if pairwise:
        rejected = response_ids(tokenizer, [str(m.get("content") or "") for m in resp_b])
        check_template_keeps_content(tokenizer, [p + [m] for p, m in zip(prompt_msgs, resp_b)], ids, prompts, rejected)
    stats["examples_spelling_control_tokens"] = sum(
        any(spelled_controls(tokenizer, str(m.get("content") or "")) for m in [*msgs, *resp])
        for msgs, *resp in zip(prompt_msgs, resp_a, *([resp_b] if pairwise else []))
    )
    if pairwise:
        mp, mr = cfg.max_prompt_length, cfg.max_response_length
        stats["truncated_prompts"] = sum(len(p) > mp for p in prompts)
        stats["truncated_chosen"] = sum(len(c) > mr for c in chosen)
        stats["truncated_rejected"] = sum(len(c) > mr for c in rejected)
        # every response ends with its end-of-turn id: any cut removes it
        stats["chosen_end_of_turn_cut"] = stats["truncated_chosen"]
        stats["rejected_end_of_turn_cut"] = stats["truncated_rejected"]
        prompts = [p[-mp:] for p in prompts]
        chosen = [c[:mr] for c in chosen]
        rejected = [c[:mr] for c in rejected]
    else:
        ml = cfg.max_length
        stats["truncated_sequences"] = sum(len(p) + len(c) > ml for p, c in zip(prompts, chosen))
        stats["sft_end_of_turn_cut"] = stats["truncated_sequences"]
        stats["empty_responses_after_truncation"] = sum(len(p) >= ml for p in prompts)
        chosen = [c[: max(0, ml - len(p))] for p, c in zip(prompts, chosen)]
        prompts = [p[:ml] for p in prompts]
    for name, value in stats.items():
        if name.endswith("_end_of_turn_cut") and value:
            cap = "max_length" if name.startswith("sft") else "max_response_length"
            log.warning("tokenisation: %s = %d of %d examples: the cut at %s removes their end-of-turn token %s "
                        "(the model learns not to stop); raise %s or filter at curation with the same cap",
                        name, value, len(ids), cap, eot_text, cap)  # fmt: skip
        elif name not in ("examples", "rows_checked", "rows_rewritten") and value:
            log.warning("tokenisation: %s = %d of %d examples", name, value, len(ids))
    return TokenizedData(ids, prompts, chosen, rejected, stats=stats)


def _fingerprint(data_path, tokenizer_dir, cfg) -> str:
    h = hashlib.sha256()
    st = os.stat(data_path)
    h.update(f"{Path(data_path).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        f = Path(tokenizer_dir) / name
        if f.exists():
            h.update(f.read_bytes())
    keys = ("objective", "max_length", "max_prompt_length", "max_response_length")
    h.update(json.dumps({k: getattr(cfg, k) for k in keys if k != "objective"} |
                        {"pairwise": cfg.is_pairwise}, sort_keys=True).encode())
    h.update(b"v2")  # v2: contents as plain text, the end-of-turn token learned from the template
    return h.hexdigest()[:16]


def _pack(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in arrays])
    flat = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
    return flat.astype(np.int32), offsets


def _unpack(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def load_tokenized(data_path, tokenizer, tokenizer_dir, cfg, cache_dir=None) -> TokenizedData:
    """Read + tokenise ``data_path``; with ``cache_dir``, reuse a cache keyed on the data file,
    the tokenizer files and the truncation settings (resumed runs skip tokenisation)."""
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"tokens-{_fingerprint(data_path, tokenizer_dir, cfg)}.npz"
        if cache.exists():
            try:
                z = np.load(cache, allow_pickle=False)
                meta = json.loads(str(z["meta"]))
                data = TokenizedData(
                    ids=list(meta["ids"]),
                    prompts=_unpack(z["prompts"], z["prompts_off"]),
                    chosen=_unpack(z["chosen"], z["chosen_off"]),
                    rejected=_unpack(z["rejected"], z["rejected_off"]) if "rejected" in z else None,
                    stats=meta["stats"],
                )
                log.info("tokenised data from cache %s", cache)
                return data
            except Exception as exc:  # a damaged cache is rebuilt
                log.warning("ignoring unreadable token cache %s: %s", cache, exc)
    data = tokenize_records(read_records(data_path), tokenizer, cfg)
    if cache is not None:
        arrays = {}
        for name in ("prompts", "chosen", "rejected"):
            seqs = getattr(data, name)
            if seqs is not None:
                arrays[name], arrays[f"{name}_off"] = _pack(seqs)
        meta = json.dumps({"ids": data.ids, "stats": data.stats})
        with atomic_path(cache, suffix=".npz") as tmp:  # np.savez appends .npz when missing
            np.savez(tmp, meta=np.array(meta), **arrays)
    return data


def attach_reference(data: TokenizedData, ref_path: str | os.PathLike, cfg) -> None:
    """Join cached DPO reference log-probs (``id, ref_chosen_logp, ref_rejected_logp``) by id."""
    import pyarrow.parquet as pq

    table = pq.read_table(ref_path)
    meta = (table.schema.metadata or {}).get(b"redi")
    if meta:
        meta = json.loads(meta)
        for key in ("max_prompt_length", "max_response_length"):
            if key in meta and meta[key] != getattr(cfg, key):
                raise ValueError(
                    f"reference log-probs {ref_path} were computed with {key}={meta[key]}, "
                    f"this run uses {getattr(cfg, key)}: recompute them"
                )
    df = table.to_pandas()
    by_id = {str(i): (c, r) for i, c, r in zip(df["id"], df["ref_chosen_logp"], df["ref_rejected_logp"])}
    missing = [i for i in data.ids if i not in by_id]
    if missing:
        raise ValueError(
            f"{len(missing)} training example(s) have no reference log-probs in {ref_path} "
            f"(first: {missing[:3]})"
        )
    data.ref_chosen = np.array([by_id[i][0] for i in data.ids], dtype=np.float64)
    data.ref_rejected = np.array([by_id[i][1] for i in data.ids], dtype=np.float64)


def attach_row_values(data: TokenizedData, data_path, fields: dict[str, str], objective: str) -> None:
    """Join numbers from the data rows by id: ``fields`` maps a name to a dotted path in the row
    (``{"group_chosen": "group.chosen"}``); they reach the loss as keyword arguments
    (``objectives.Objective.row_inputs``). Raises ``ValueError`` naming the file, the row and the
    path when a row lacks one."""
    by_id = {str(r.get("id", i)): r for i, r in enumerate(read_records(data_path))}
    for name, path in fields.items():
        values = np.empty(len(data.ids), dtype=np.float64)
        for k, ex_id in enumerate(data.ids):
            value = by_id.get(ex_id)
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(
                    f"{data_path}: row {ex_id!r} has no number at {path!r}, which objective {objective!r} "
                    "reads (group objectives need pairs curated with curation.pairs: groups)"
                )
            values[k] = float(value)
        data.row_values[name] = values


# ----------------------------------------------------------------------------------------------
# Dataset, sampler, collator


class ExampleDataset(torch.utils.data.Dataset):
    """Index ``(i, weight)`` -> ``{"index": i, "weight": weight}``; the collator reads the ids."""

    def __init__(self, data: TokenizedData):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key):
        i, w = key if isinstance(key, tuple) else (key, 1.0)
        return {"index": int(i), "weight": float(w)}


class GlobalBatchSampler:
    """Yields micro-batches (lists of ``(index, weight)``), one global batch per optimizer step.

    ``len()`` is ``steps_per_epoch * global_batch / micro_batch``. The permutation depends only on
    ``(seed, epoch)``; ``set_epoch`` is called by the trainer at the start of every epoch.
    """

    def __init__(self, lengths: np.ndarray, global_batch: int, micro_batch: int, seed: int):
        if global_batch % micro_batch:
            raise ValueError("global_batch must be a multiple of micro_batch")
        self.lengths = np.asarray(lengths)
        self.global_batch = int(global_batch)
        self.batch_size = int(micro_batch)  # read by accelerate's BatchSamplerShard
        self.drop_last = False
        self.seed = int(seed)
        self.epoch = 0
        n = len(self.lengths)
        self.steps_per_epoch = -(-n // self.global_batch)
        # fillers for a short last batch: the shortest examples (least wasted compute)
        self._fillers = np.argsort(self.lengths, kind="stable")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch * (self.global_batch // self.batch_size)

    def global_batches(self, epoch: int | None = None):
        """``[(index, weight), ...]`` per step of ``epoch``, already length-sorted."""
        epoch = self.epoch if epoch is None else epoch
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.lengths))
        for s in range(self.steps_per_epoch):
            idx = perm[s * self.global_batch : (s + 1) * self.global_batch]
            items = [(int(i), 1.0) for i in idx]
            k = 0
            while len(items) < self.global_batch:
                items.append((int(self._fillers[k % len(self._fillers)]), 0.0))
                k += 1
            items.sort(key=lambda t: (-int(self.lengths[t[0]]), -t[1]))  # stable: ties keep order
            yield items

    def __iter__(self):
        for items in self.global_batches():
            for m in range(0, self.global_batch, self.batch_size):
                yield items[m : m + self.batch_size]


class Collator:
    """Build one micro-batch. Output keys (all tensors):

    ``input_ids`` [R, T] (padded) or [1, S] (packed); ``attention_mask`` (padded) or
    ``position_ids`` (packed); ``score_index`` [N] flat positions whose next token is a response
    token; ``targets`` [N]; ``seq_index`` [N] row of each scored position; ``lengths`` [R]
    response tokens per row; ``weights`` [B]; ``units`` (scalar, weighted tokens for sft or pairs);
    ``n_tokens`` (non-padding tokens); ``ref_chosen``/``ref_rejected`` [B] (float64 reference
    log-prob sums, nats) when present; one [B] tensor per ``row_values`` name.
    Rows: sft = one per example; pairs = B chosen rows then B rejected rows.
    """

    def __init__(self, data: TokenizedData, pad_id: int, padding_free: bool, sft_units: bool):
        self.data = data
        self.pad_id = int(pad_id)
        self.padding_free = bool(padding_free)
        self.sft_units = sft_units

    def rows(self, indices: list[int]) -> list[tuple[np.ndarray, int]]:
        d = self.data
        rows = [(np.concatenate([d.prompts[i], d.chosen[i]]), len(d.prompts[i])) for i in indices]
        if d.rejected is not None:
            rows += [(np.concatenate([d.prompts[i], d.rejected[i]]), len(d.prompts[i])) for i in indices]
        return rows

    def __call__(self, items: list[dict]) -> dict:
        indices = [it["index"] for it in items]
        weights = torch.tensor([it["weight"] for it in items], dtype=torch.float32)
        rows = self.rows(indices)
        lens = [len(seq) for seq, _ in rows]
        score, targets, seq_index, resp_lens = [], [], [], []
        if self.padding_free:
            total = sum(lens)
            input_ids = torch.empty(1, total, dtype=torch.long)
            position_ids = torch.empty(1, total, dtype=torch.long)
        else:
            width = max(lens)
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            attention_mask = torch.zeros(len(rows), width, dtype=torch.long)
        offset = 0
        for r, (seq, p) in enumerate(rows):
            n = len(seq)
            t = torch.from_numpy(seq.astype(np.int64))
            start = offset if self.padding_free else r * input_ids.shape[1]
            if self.padding_free:
                input_ids[0, offset : offset + n] = t
                position_ids[0, offset : offset + n] = torch.arange(n)
                offset += n
            else:
                input_ids[r, :n] = t
                attention_mask[r, :n] = 1
            # position j predicts token j+1; response tokens are seq[p:], predicted from p-1..n-2
            first = max(p, 1)
            score.append(torch.arange(start + first - 1, start + n - 1))
            targets.append(t[first:])
            seq_index.append(torch.full((n - first,), r, dtype=torch.long))
            resp_lens.append(n - p)
        batch = {
            "input_ids": input_ids,
            "score_index": torch.cat(score),
            "targets": torch.cat(targets),
            "seq_index": torch.cat(seq_index),
            "lengths": torch.tensor(resp_lens, dtype=torch.float32),
            "weights": weights,
            "n_tokens": torch.tensor(float(sum(lens))),
        }
        if self.padding_free:
            batch["position_ids"] = position_ids
        else:
            batch["attention_mask"] = attention_mask
        b = len(indices)
        if self.sft_units:
            batch["units"] = (weights * batch["lengths"][:b]).sum()
        else:
            batch["units"] = weights.sum()
        for name, values in self.data.row_values.items():  # attach_row_values; small integers
            batch[name] = torch.tensor(values[indices], dtype=torch.float32)
        if self.data.ref_chosen is not None:
            # float64 sums, as computed: a float32 sum of a 19k-token response is off by ~1e-3
            batch["ref_chosen"] = torch.tensor(self.data.ref_chosen[indices], dtype=torch.float64)
            batch["ref_rejected"] = torch.tensor(self.data.ref_rejected[indices], dtype=torch.float64)
        return batch
