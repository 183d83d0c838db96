"""Provenance of a result: which code, libraries, data and model produced it.

One record shape, written into every training ``summary.json`` and every evaluation
``metrics.json`` under the key ``provenance``::

    {"code": {"commit": "3d838b7...", "dirty": false},            # git of this checkout
     "libraries": {"torch": "2.13.0", "transformers": ..., "accelerate": ..., "vllm": null,
                   "math-verify": ..., "datasets": ...},          # null = not installed
     "data": {"<role>": {"path": ..., "sha256": ...} | {"path": ..., "hub": name,
              "revision": rev, "commit": sha, "sha256": ...}},     # content hash (+ hub source)
     "model": {"path": ..., "sha256": ..., "hub": ..., "revision": ...,
               "student": {"hub": ..., "revision": ..., "local_path": ..., "weights_sha256": ...,
                           "name_or_path": ..., "license": ...}},   # the prepared student
     "config": {...}}                                              # the resolved config

:func:`version_key` reduces a record to what makes two results comparable (code commit + dirty
flag, library versions, data identities); the report prints the versions once and flags results
whose key differs from the majority (``redi.report.summary``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import subprocess
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
# distribution names whose versions change results (the vLLM sampler, the Math-Verify grader...)
LIBRARIES = ("torch", "transformers", "accelerate", "vllm", "math-verify", "datasets")
HUB_DOWNLOAD_RECORD = "redi_download.json"  # written by redi.data.sources.download_hub
HUB_MODEL_RECORD = "redi_source.json"  # optional: {"hub": name, "revision": rev} of a prepared model
_CHUNK = 1 << 20


@functools.cache
def code_version(root: str | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout at ``root``
    (default: this package's repository). Untracked files do not count as dirty; outside a git
    checkout (an installed wheel) both are None."""
    root = str(root or REPO_ROOT)
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status.strip())}


def library_versions() -> dict:
    """Installed version of each of :data:`LIBRARIES` (None when not installed)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


@functools.lru_cache(maxsize=256)
def _content_hash(path: str, stamp: tuple) -> str:
    root = Path(path)
    h = hashlib.sha256()
    for f in _files(root):
        h.update(str(f.relative_to(root) if f != root else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def content_hash(path: str | Path) -> str:
    """sha256 over the bytes of a file, or of every (non-hidden) file under a directory in path
    order with their relative names. Reads everything once per process (cached by size/mtime)."""
    p = Path(path)
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in _files(p))
    return _content_hash(str(p), stamp)


def data_identity(path: str | Path | None) -> dict | None:
    """A data file or folder: its content hash, and its hub name, revision and resolved commit
    when it is a hub download (from the record ``download_hub`` leaves, which hashed the download
    once). None for no path; a missing path says so."""
    if path is None:
        return None
    p = Path(path)
    out: dict = {"path": str(path)}
    record = p / HUB_DOWNLOAD_RECORD if p.is_dir() else None
    if record is not None and record.is_file():
        info = json.loads(record.read_text())
        out.update(hub=info.get("name"), revision=info.get("revision"), split=info.get("split"))
        out.update({k: info[k] for k in ("commit", "sha256") if info.get(k)})
        return out
    if not p.exists():
        out["missing"] = True
        return out
    out["sha256"] = content_hash(p)
    return out


def model_identity(path: str | Path | None) -> dict | None:
    """A model directory: hub name/revision when known (a hub cache ``snapshots/<sha>`` path or a
    ``redi_source.json``), and the content hash of its config and weights (not of optimizer
    state). A name that is not a local path is recorded as a hub name."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        return {"path": str(path), "hub": str(path)}
    out: dict = {"path": str(path)}
    if p.parent.name == "snapshots":
        out.update(hub=p.parent.parent.name.removeprefix("models--").replace("--", "/"), revision=p.name)
    if (p / HUB_MODEL_RECORD).is_file():
        out.update(json.loads((p / HUB_MODEL_RECORD).read_text()))
    student = _student_record(p)
    if student is not None:  # the prepared student's name, carried by every checkpoint's tokenizer
        out["student"] = student
    if p.is_dir():
        wanted = [
            f
            for f in sorted(p.iterdir())
            if f.is_file()
            and (
                f.name == "config.json"
                or f.suffix in (".safetensors", ".bin")
                and not f.name.startswith(("optimizer", "scheduler", "training_args"))
            )
        ]
        h = hashlib.sha256()
        for f in wanted:
            h.update(f.name.encode() + b"\0" + content_hash(f).encode())
        out["sha256"] = h.hexdigest()
    return out


def _student_record(model_dir: Path) -> dict | None:
    """The student record (:func:`redi.model.base.student_record`) stored in a model directory's
    ``tokenizer_config.json`` (key ``redi_chat``), or None."""
    try:
        cfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return None
    return ((cfg.get("redi_chat") or {}) if isinstance(cfg, dict) else {}).get("student")


def curation_dir(curated: str | Path) -> Path:
    """The folder of the curation report a training file comes from: the file's own folder, or
    for pairs with the student's own negatives (``results/data/{student,both}-negatives/``,
    made from the teacher's pairs) the folder above."""
    folder = Path(curated).parent
    return folder.parent if folder.name.endswith("-negatives") else folder


def corpus_of(curated: str | Path | None) -> str | None:
    """The corpus a curated file (``sft.jsonl`` / ``pref.jsonl``) was made from: the input the
    curation report beside it names (``normalize.input``), or None when there is no report."""
    if curated is None:
        return None
    report = curation_dir(curated) / "curation_report.json"
    try:
        return (json.loads(report.read_text()).get("normalize") or {}).get("input")
    except (OSError, ValueError):
        return None


def record(*, config: dict | None = None, data: dict | None = None, model=None, root: str | None = None) -> dict:
    """The provenance record (module docstring). ``data``: ``{role: path}``; ``model``: a path."""
    return {
        "code": code_version(root),
        "libraries": library_versions(),
        "data": {role: data_identity(path) for role, path in (data or {}).items() if path is not None},
        "model": model_identity(model),
        "config": config,
    }


def version_key(prov: dict | None) -> tuple | None:
    """What must agree for two results to be compared: code (commit, dirty), library versions,
    and the corpus identity (hash or hub revision; None where the record names no corpus, as an
    evaluation's does). Model, config and a run's own training file (SFT and pair runs read
    different files by design) vary. Compare keys with :func:`compatible`."""
    if not prov:
        return None
    code = prov.get("code") or {}
    libs = tuple(sorted((prov.get("libraries") or {}).items()))
    corpus = (prov.get("data") or {}).get("corpus")
    ident = (corpus.get("sha256") or f"{corpus.get('hub')}@{corpus.get('revision')}") if corpus else None
    return (code.get("commit"), code.get("dirty"), libs, ident)


def compatible(a: tuple | None, b: tuple | None) -> bool:
    """Two version keys agree: same code and libraries, and the same corpus where both name one."""
    if a is None or b is None:
        return a is b
    return a[:3] == b[:3] and (a[3] is None or b[3] is None or a[3] == b[3])


# data roles whose identity must agree across a table (the corpus; benchmarks are compared by
# name in every table already)
COMPARED_DATA = ("corpus",)


def describe(prov: dict) -> str:
    """One line: ``commit 3d838b7 (dirty), torch 2.13.0, transformers 5.20.0, ..., corpus sha256 ab12..``."""
    code = prov.get("code") or {}
    commit = code.get("commit")
    parts = [f"commit {commit[:10] if commit else 'unknown'}" + (" (dirty)" if code.get("dirty") else "")]
    parts += [f"{k} {v}" for k, v in (prov.get("libraries") or {}).items() if v]
    for role, d in sorted((prov.get("data") or {}).items()):
        if d and role in COMPARED_DATA:
            ident = f"{d['hub']}@{d.get('commit') or d.get('revision')}" if d.get("hub") else ""
            ident = " ".join(x for x in (ident, f"sha256 {str(d['sha256'])[:12]}" if d.get("sha256") else "") if x)
            ident = ident or ("missing" if d.get("missing") else "unknown")
            parts.append(f"{role} {ident}")
    return ", ".join(parts)
