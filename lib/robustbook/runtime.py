"""Seeds, threads, the device, project paths, verified cache entries and where the time goes.

Everything that touches global state of the process lives here, so that a chapter starts with
one call (:func:`setup`) and the rest of the library stays pure.

* :func:`device` is the one place that decides where models and batches go (``cuda`` when
  available, ``ROBUSTBOOK_DEVICE`` overrides); data stays on the CPU and moves per batch.
* Cache entries (:func:`cache_save` / :func:`cache_load`) carry a header with what produced them
  and a checksum; they are written atomically, loaded with ``weights_only=True``, and a damaged or
  foreign entry is moved aside and recomputed. Their keys include :func:`code_hash` of the library
  modules that computed them, so editing a training loop or an attack invalidates its entries.
* :func:`timed` books the wall time of the outermost activity (``training``, ``attacks``) so that
  the status page can show each chapter's time split.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

log = logging.getLogger("robustbook")

# Chosen by measurement (benchmarks/threads.py): on the 2-core machine two torch threads
# train a small model faster than one when nothing else runs, but collapse when another
# process competes for the cores. Chapters run in one papermill kernel while its parent
# waits, so the kernel may use every core; override with ROBUSTBOOK_THREADS.
DEFAULT_THREADS = max(1, min(2, os.cpu_count() or 1))
DEVICES = ("cpu", "cuda", "mps")


# --------------------------------------------------------------------------- paths
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
    """Where chapters write their results JSON (``ROBUSTBOOK_RESULTS`` overrides; the runner stages there)."""
    env = os.environ.get("ROBUSTBOOK_RESULTS")
    path = Path(env) if env else build_dir() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- threads, seeds, device
def set_threads(n: int | None = None) -> int:
    """Set the torch intra-op thread count (``ROBUSTBOOK_THREADS`` overrides the default)."""
    text = os.environ.get("ROBUSTBOOK_THREADS")
    if text is not None and not text.strip().isdigit():
        raise ValueError(f"ROBUSTBOOK_THREADS={text!r} must be a positive integer")
    n = int(text) if text is not None else (n or DEFAULT_THREADS)
    if n < 1:
        raise ValueError(f"the thread count must be >= 1; got {n}")
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every GPU) so that the same parameters give the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def device() -> torch.device:
    """Where models and batches go: ``ROBUSTBOOK_DEVICE`` if set, else ``cuda`` when available, else ``cpu``."""
    name = os.environ.get("ROBUSTBOOK_DEVICE", "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise ValueError(f"ROBUSTBOOK_DEVICE={name!r} is not a device; valid choices: {', '.join(DEVICES)} "
                         "(optionally with an index, e.g. cuda:1)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"ROBUSTBOOK_DEVICE={name!r} but torch sees no CUDA device here; unset it or use cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"ROBUSTBOOK_DEVICE={name!r} but MPS is not available here; unset it or use cpu")
    return torch.device(name)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (``cpu`` for a model without any)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def available_memory() -> int | None:
    """Bytes of memory available to new work on this machine (Linux: MemAvailable), None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Slices covering ``range(n)`` in batches (the data stays where it is; callers move each batch)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def setup(seed: int = 0, threads: int | None = None) -> dict:
    """Call once at the top of a chapter: seeds, threads, deterministic kernels, the device."""
    seed_everything(seed)
    n = set_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
    reset_timings()
    return {"seed": seed, "threads": n, "device": str(device()), "torch": torch.__version__}


# --------------------------------------------------------------------------- hashing
def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hash of a JSON-serialisable object, stable across runs and machines."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def model_fingerprint(model: torch.nn.Module) -> str:
    """Layers and every weight and buffer of a model: two models with equal fingerprints compute the same function."""
    return stable_hash([repr(model), {k: tensor_fingerprint(v) for k, v in model.state_dict().items()}])


def code_hash(*modules: str) -> str:
    """A hash of the source files of the named ``robustbook`` modules (e.g. ``"train", "losses"``).

    Part of every cache key: an edit to the code that produced an entry changes its key.
    """
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        spec = importlib.util.find_spec(f"robustbook.{name}")
        if spec is None or spec.origin is None:
            raise ValueError(f"code_hash: no module robustbook.{name}")
        h.update(name.encode())
        h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- files
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
    """Load a saved object with ``weights_only=True``: tensors and plain containers only."""
    return torch.load(path, map_location="cpu", weights_only=True)


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_jsonable, allow_nan=False)
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


# --------------------------------------------------------------------------- verified cache entries
MAGIC = b"ROBUSTBOOK-CACHE-1\n"


class CacheEntryError(RuntimeError):
    """A cache entry is damaged (truncated, wrong checksum) or foreign (another kind or key)."""


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def check_finite(obj: Any, what: str) -> None:
    """Raise when a floating tensor inside ``obj`` holds NaN or infinity (nothing non-finite is cached)."""
    for t in _tensors(obj):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise FloatingPointError(f"{what} holds non-finite values (NaN or inf); nothing was cached. "
                                     "A diverged training run usually means the learning rate is too high.")


def cache_save(path: Path, payload: Any, kind: str, key: str, meta: dict | None = None,
               allow_nonfinite: bool = False) -> Path:
    """Atomically write a cache entry: magic line, JSON header (kind, key, sha256, meta), torch payload."""
    if not allow_nonfinite:
        check_finite(payload, f"{kind} entry {Path(path).name}")
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    header = {"kind": kind, "key": key, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
              "meta": meta or {}}
    blob = MAGIC + json.dumps(header, sort_keys=True, default=str).encode() + b"\n" + data
    return atomic_write(path, lambda tmp: tmp.write_bytes(blob))


def _read_entry(path: Path, kind: str, key: str) -> tuple[dict, Any]:
    blob = path.read_bytes()
    if not blob.startswith(MAGIC):
        raise CacheEntryError("not a robustbook cache entry (no header)")
    head, _, data = blob[len(MAGIC):].partition(b"\n")
    try:
        header = json.loads(head)
    except json.JSONDecodeError as err:
        raise CacheEntryError(f"unreadable header ({err})") from None
    if header.get("kind") != kind or header.get("key") != key:
        raise CacheEntryError(f"foreign entry (holds {header.get('kind')!r} {header.get('key')!r}, "
                              f"expected {kind!r} {key!r})")
    if len(data) != header.get("bytes") or hashlib.sha256(data).hexdigest() != header.get("sha256"):
        raise CacheEntryError(f"damaged: {len(data)} of {header.get('bytes')} bytes, checksum mismatch")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a damaged entry
        raise CacheEntryError(f"damaged payload ({type(err).__name__}: {err})") from None
    return header, payload


def quarantine(path: Path, why: str) -> Path:
    """Move a bad cache entry aside (``<name>.bad-<time>``) and say so in one line."""
    target = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, target)
    try:
        shown = target.relative_to(cache_dir())
    except ValueError:
        shown = target.name
    print(f"robustbook: cache entry {shown} was {why}; moved aside and recomputing", flush=True)
    return target


def cache_load(path: Path, kind: str, key: str, validate: Callable[[Any], None] | None = None) -> Any | None:
    """The payload of a verified cache entry, or None when there is none.

    A damaged or foreign entry (or one that ``validate`` rejects, e.g. a checkpoint of another
    architecture) is moved aside with one line saying so, and None is returned: the caller recomputes.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        _, payload = _read_entry(path, kind, key)
        if validate is not None:
            validate(payload)
    except (CacheEntryError, ValueError, KeyError, RuntimeError, TypeError) as err:
        quarantine(path, f"unusable ({err})")
        return None
    return payload


_MEMO_OFF: list[bool] = []


@contextlib.contextmanager
def caching_off():
    """Inside this block :func:`memo` computes afresh (timings must measure the work, not the cache)."""
    _MEMO_OFF.append(True)
    try:
        yield
    finally:
        _MEMO_OFF.pop()


def memo_path(kind: str, key_parts: Any, modules: tuple[str, ...]) -> Path:
    """Where :func:`memo` keeps the result for these key parts and this code (the file may not exist yet)."""
    return cache_dir() / kind / f"{stable_hash([kind, key_parts, code_hash(*modules)])}.pt"


def memo(kind: str, key_parts: Any, compute: Callable[[], Any], modules: tuple[str, ...], cache: bool = True) -> Any:
    """The result of ``compute()``, cached as a verified entry under ``cache_dir()/<kind>``.

    ``key_parts`` must identify everything the result depends on (model fingerprints, input fingerprints,
    options); the code of ``modules`` joins the key. Results are tensors, numbers and containers of them.
    """
    if not cache or _MEMO_OFF:
        return compute()
    path = memo_path(kind, key_parts, modules)
    key = path.stem
    stored = cache_load(path, kind, key)
    if stored is not None:
        return stored["value"]
    value = compute()
    cache_save(path, {"value": value}, kind, key, allow_nonfinite=True)
    return value


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Run the block with ``model`` in eval mode, then restore the mode it had (even on an error).

    >>> with eval_mode(model):                                          # doctest: +SKIP
    ...     x_adv = pgd_training(model, x, y, eps)        # no dropout noise inside the attack
    """
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


# --------------------------------------------------------------------------- progress
_TERMINAL = None


def _terminal():
    """A stream to the build's terminal from inside a Jupyter kernel, else the progress log.

    ipykernel forwards the kernel's stderr (even the file descriptor) into the notebook, but keeps a
    copy of the original descriptor; writing there reaches the terminal that runs the build. Without
    it, bars go to ``ROBUSTBOOK_PROGRESS_LOG`` (or nowhere).
    """
    import sys

    global _TERMINAL
    if _TERMINAL is None:
        fd = getattr(sys.stderr, "_original_stdstream_copy", None)
        if isinstance(fd, int):
            _TERMINAL = os.fdopen(os.dup(fd), "w", buffering=1)
        elif os.environ.get("ROBUSTBOOK_PROGRESS_LOG"):
            _TERMINAL = open(os.environ["ROBUSTBOOK_PROGRESS_LOG"], "a", buffering=1)   # noqa: SIM115
        else:
            _TERMINAL = open(os.devnull, "w")   # noqa: SIM115
    return _TERMINAL


def progress(iterable, desc: str = "", total: int | None = None):
    """A progress bar for a long loop, shown where the reader is.

    While the book is built (``ROBUSTBOOK_BUILD`` set by the runner), bars go to the kernel's own
    stderr — the terminal and the build log — never into the executed page. Interactively (Jupyter,
    Colab) they are tqdm's notebook bars; ``ROBUSTBOOK_PROGRESS=0`` switches them off.
    """
    if os.environ.get("ROBUSTBOOK_PROGRESS", "1") == "0":
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, disable=True)
    if os.environ.get("ROBUSTBOOK_BUILD"):
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, file=_terminal(), leave=False, mininterval=2.0)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


# --------------------------------------------------------------------------- where the time goes
_TIMINGS: dict[str, float] = {}
_ACTIVE: list[str] = []


def reset_timings() -> None:
    _TIMINGS.clear()


def timings() -> dict[str, float]:
    """Seconds booked per activity since :func:`setup` (only the outermost activity counts)."""
    return dict(_TIMINGS)


@contextlib.contextmanager
def timed(activity: str):
    """Book the wall time of a block under ``activity`` unless an outer block is already booking it."""
    if _ACTIVE:
        yield
        return
    _ACTIVE.append(activity)
    start = time.perf_counter()
    try:
        yield
    finally:
        _ACTIVE.pop()
        _TIMINGS[activity] = _TIMINGS.get(activity, 0.0) + time.perf_counter() - start


def reference_workload(repeats: int = 5) -> float:
    """Seconds for a fixed small workload (matrix products and a small CNN step): the machine's speed.

    Printed on the status page beside the chapters' run times, so that times from different
    machines can be compared (the median of ``repeats`` runs, single thread).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(256, 256, generator=gen)
        conv = torch.nn.Conv2d(16, 32, 3, padding=1)
        x = torch.randn(64, 16, 16, 16, generator=gen)
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(20):
                a = torch.tanh(a @ a.T / 16)
            conv(x).square().mean().backward()
            runs.append(time.perf_counter() - start)
        return float(np.median(runs))
    finally:
        torch.set_num_threads(old)

