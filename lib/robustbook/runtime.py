"""Seeds, threads, devices, project paths and atomic file writes.

Everything that touches global state of the process lives here, so that a chapter
starts with one call (:func:`setup`) and the rest of the library stays pure.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

# Chosen by measurement (benchmarks/threads.py): on the 2-core machine two torch threads
# train a small model ~1.8x faster than one when nothing else runs, but collapse when
# another process competes for the cores.  Chapters run in one papermill kernel while
# its parent waits, so the kernel may use every core; override with ROBUSTBOOK_THREADS.
DEFAULT_THREADS = max(1, min(2, os.cpu_count() or 1))


def project_root() -> Path:
    """The folder holding ``_config.yml`` (the book's root), searched upward from cwd.

    Falls back to the current folder, e.g. on Colab where only the notebook exists.
    """
    env = os.environ.get("ROBUSTBOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "lib" / "robustbook").is_dir():
            return folder
    return here


def build_dir() -> Path:
    return project_root() / "_build"


def cache_dir() -> Path:
    """Where trained checkpoints and attack results are cached (``ROBUSTBOOK_CACHE``)."""
    env = os.environ.get("ROBUSTBOOK_CACHE")
    path = Path(env) if env else build_dir() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Where downloadable datasets live (``ROBUSTBOOK_DATA``, default ``~/.cache/robustbook/data``)."""
    env = os.environ.get("ROBUSTBOOK_DATA")
    return Path(env) if env else Path.home() / ".cache" / "robustbook" / "data"


def results_dir() -> Path:
    path = build_dir() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def set_threads(n: int | None = None) -> int:
    """Set the torch intra-op thread count (``ROBUSTBOOK_THREADS`` overrides the default)."""
    n = int(os.environ.get("ROBUSTBOOK_THREADS", n or DEFAULT_THREADS))
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so that the same parameters give the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def setup(seed: int = 0, threads: int | None = None) -> dict:
    """Call once at the top of a chapter: seeds, threads, deterministic kernels."""
    seed_everything(seed)
    n = set_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return {"seed": seed, "threads": n, "device": str(device()), "torch": torch.__version__}


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hash of a JSON-serialisable object, stable across runs and machines."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and rename it into place.

    A crash or interrupt inside ``write`` leaves ``path`` untouched (either the old file
    or no file), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """Atomically save tensors / state dicts (load them back with :func:`load_torch`)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | os.PathLike) -> Any:
    """Load a cached object with ``weights_only=True``: tensors and plain containers only."""
    return torch.load(path, map_location="cpu", weights_only=True)


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_jsonable)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"cannot store {type(x).__name__} in JSON")
