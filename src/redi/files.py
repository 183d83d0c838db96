"""Atomic file writes: the one home for "write a temporary file, then rename it into place".

A reader (a Snakemake job, a resumed run, a person) sees either the previous file or the whole
new one, never a torn write: the data goes to a hidden temporary file in the *same folder* (so
the rename cannot cross filesystems), is flushed and ``fsync``'ed, then ``os.replace`` swaps it
in (atomic on POSIX) and the folder entry is ``fsync``'ed. If the body raises, the temporary file
is removed and the target is left untouched (one helper instead of seven copies).

API:

* :func:`atomic_path` - a context manager yielding the temporary path, for writers that take a
  path (``pyarrow.parquet.write_table``, ``np.savez``, ``DataFrame.to_csv``, ``ParquetWriter``).
* :func:`atomic_write` - a context manager yielding an open file (``mode`` ``"w"`` or ``"wb"``).
* :func:`write_text_atomic`, :func:`write_json_atomic`, :func:`write_parquet_atomic` - one call.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path) -> None:
    """``fsync`` a folder so a rename inside it survives a crash (a no-op where unsupported)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (and Windows) cannot fsync a directory
        pass
    finally:
        os.close(fd)


def temp_path(path, suffix: str = "") -> Path:
    """A hidden, unique sibling of ``path`` (same folder): ``.<name>.<pid>.<random>.tmp<suffix>``.

    ``suffix`` is for writers that append an extension when it is missing (``np.savez``: ".npz").
    """
    p = Path(path)
    return p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}")


@contextlib.contextmanager
def atomic_path(path, suffix: str = "", fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on normal exit rename it onto ``path``.

    The parent folder is created. The body must leave a regular file at the yielded path.
    On an exception the temporary file is deleted and ``path`` is not touched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target, suffix)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", encoding: str | None = "utf-8", fsync: bool = True) -> Iterator[IO[Any]]:
    """Yield a file opened in ``mode`` (``"w"`` text, UTF-8 by default, or ``"wb"``); on normal
    exit it is flushed, ``fsync``'ed and renamed onto ``path``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, fsync=fsync) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh


def write_text_atomic(path, text: str, encoding: str = "utf-8") -> None:
    with atomic_write(path, "w", encoding=encoding) as fh:
        fh.write(text)


def write_json_atomic(path, obj, indent: int | None = 1, ensure_ascii: bool = False) -> None:
    """``obj`` as JSON (``default=str`` for paths and the like) plus a newline, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=ensure_ascii, default=str) + "\n")


def write_parquet_atomic(table, path, **kwargs) -> None:
    """``pyarrow.parquet.write_table(table, path, **kwargs)``, atomically."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, str(tmp), **kwargs)


__all__ = [
    "atomic_path",
    "atomic_write",
    "fsync_dir",
    "temp_path",
    "write_json_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
]
