"""Atomic file writes, content hashes and run manifests: nothing half-written, every run traceable."""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

TRACKED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "tokenizers", "numpy", "pillow", "papermill")


def to_jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


@contextlib.contextmanager
def _atomic_text(path: str | os.PathLike) -> Iterator:
    """A text file handle whose content replaces `path` only when the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    with _atomic_text(path) as f:
        json.dump(to_jsonable(obj), f, indent=1)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    with _atomic_text(path) as f:
        for record in records:
            f.write(json.dumps(to_jsonable(record)) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path` whole, on failure it is removed.

    One writer owns `path`: the leftovers of an earlier writer that was killed outright (SIGKILL, a power cut) are
    removed first. lvlmu's commands turn SIGTERM into an exception, so a terminated writer cleans up after itself.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (*path.parent.glob(f".{glob.escape(path.name)}.*.tmp"), path.with_name(f".{path.name}.old")):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def hash_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(to_jsonable(obj), sort_keys=True).encode()).hexdigest()


def hash_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def exit_on_sigterm() -> None:
    """Turn SIGTERM (what a scheduler sends to stop a job) into SystemExit, so that `finally` blocks and
    atomic_directory's clean-up run."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
