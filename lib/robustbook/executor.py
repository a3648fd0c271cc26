"""Where the independent units of a chapter's work run: here, one after another (serial, the default), or on Ray.

A :class:`Unit` is one piece of work whose result the cache keeps — a training of one recipe and seed, chapter
5's study of one zoo model. :func:`run` takes a list of them and

* never submits a unit whose cache entry exists already (so a chapter interrupted midway resumes from the
  finished units, and nothing is computed twice);
* runs the others in this process (``serial``), or as Ray tasks when ``ROBUSTBOOK_RAY`` is set — ``auto``
  starts a local Ray with this machine's cores, ``cluster`` joins the cluster ``ray start`` made on this machine
  (Ray's ``address="auto"``), any other value is the address of a running cluster
  (``head-node:6379``; the CLI's ``--ray ADDRESS`` sets it). Each task asks for one CPU (and ``num_gpus``
  when the cluster has GPUs), is retried by Ray when it fails (``max_retries``: a worker killed, a node
  lost, an exception), and gets its data and models through Ray's object store;
* brings every result back to the driver, which writes the verified cache entry itself (atomically, with its
  header and checksum): the cache stays the single source of truth and no shared file system is needed.

Numbers: a unit computes the same thing wherever it runs, but a Ray task uses one torch thread while the
serial run uses the process's threads, so float sums can be ordered differently (differences of the order of
1e-6 in a trained weight, which can move an attacked point's verdict; ``tests/test_executor.py`` measures it).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import validate as check
from .runtime import cache_save, progress

RAY = "ROBUSTBOOK_RAY"
MAX_RETRIES = 3
# instrumentation hooks, read here and nowhere else: a "module:function" wrapper around every unit (the tests
# inject faults with it), and a file that gets one line per submitted unit (the tests count them)
TASK_WRAPPER = "ROBUSTBOOK_TASK_WRAPPER"
UNIT_LOG = "ROBUSTBOOK_UNIT_LOG"


@dataclass
class Unit:
    """One independent piece of work: ``fn(*args)`` computes the payload of the cache entry at ``path``."""

    name: str
    path: Path                       # the cache entry the driver writes; the unit is done when it exists
    kind: str                        # the entry's kind and key (see robustbook.runtime.cache_save)
    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    meta: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.path.is_file()


def portable(model) -> bool:
    """Whether a model can travel to a worker: torch refuses to pickle (or deep-copy) modules with parametrizations
    (spectral norm); callers compute those in this process instead (their cache entry is written the same way)."""
    from torch.nn.utils import parametrize

    return not any(parametrize.is_parametrized(m) for m in model.modules())


def backend() -> str | None:
    """``None`` for serial, ``"auto"`` for a local Ray started here, ``"cluster"`` to join the Ray cluster this
    machine is part of (started by ``ray start``), else the cluster's address (``ROBUSTBOOK_RAY``)."""
    value = os.environ.get(RAY, "").strip()
    if value.lower() in ("", "0", "off", "serial"):
        return None
    if value.lower() == "cluster":
        return "cluster"
    return "auto" if value.lower() in ("1", "auto", "local") else value


def _wrapper() -> Callable | None:
    spec = os.environ.get(TASK_WRAPPER, "").strip()
    if not spec:
        return None
    module, _, name = spec.partition(":")
    if not name:
        raise check.InvalidArgument(f"{TASK_WRAPPER}={spec!r} must be 'module:function'")
    return getattr(importlib.import_module(module), name)


def _log_submitted(units: Sequence[Unit]) -> None:
    path = os.environ.get(UNIT_LOG)
    if path and units:
        with open(path, "a") as f:
            f.writelines(f"{u.name}\n" for u in units)


def _execute(fn: Callable, name: str, wrapper: Callable | None, threads: int | None, *args):
    """Runs where the unit runs (this process, or a Ray worker); Ray resolves the arguments' object refs."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return wrapper(fn, args, name) if wrapper is not None else fn(*args)


def _store(unit: Unit, payload: Any) -> None:
    cache_save(unit.path, payload, unit.kind, unit.key, unit.meta, allow_nonfinite=unit.kind != "model")


_RAY_STARTED = False


def _ray():
    import ray

    global _RAY_STARTED
    if not ray.is_initialized():
        where = backend()
        # the workers see the book's settings (device, threads, instrumentation hooks) as the driver does
        env = {k: v for k, v in os.environ.items() if k.startswith("ROBUSTBOOK_") and k != RAY}
        options = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                       runtime_env={"env_vars": env})
        if where == "auto":
            ray.init(num_cpus=os.cpu_count() or 1, **options)
        elif where == "cluster":
            ray.init(address="auto", **options)         # the cluster `ray start` made on this machine
        else:
            ray.init(address=where, **options)
        _RAY_STARTED = True
    return ray


def run(units: Sequence[Unit], desc: str = "units", gpus: float | None = None) -> int:
    """Compute every unit whose cache entry is missing and write the entries; returns how many were submitted."""
    todo = [u for u in units if not u.done]
    seen, unique = set(), []
    for u in todo:                              # two requests of one model are one unit
        if u.path not in seen:
            seen.add(u.path)
            unique.append(u)
    _log_submitted(unique)
    if not unique:
        return 0
    wrapper = _wrapper()
    if backend() is None:
        for u in progress(unique, desc):
            _store(u, _execute(u.fn, u.name, wrapper, None, *u.args))
        return len(unique)
    ray = _ray()
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=True)(_execute)
    shared: dict[int, Any] = {}                 # every distinct argument object goes to the object store once

    def ref(value):
        if isinstance(value, (int, float, str, bool, type(None))):
            return value
        if id(value) not in shared:
            shared[id(value)] = ray.put(value)
        return shared[id(value)]

    pending = {task.remote(u.fn, u.name, wrapper, 1, *[ref(a) for a in u.args]): u for u in unique}

    def finished():
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            yield ready[0]

    for done in progress(finished(), desc, total=len(pending)):
        _store(pending.pop(done), ray.get(done))   # raises after the retries are spent; finished units stay cached
    return len(unique)


def shutdown() -> None:
    """Stop the local Ray this process started (a joined cluster keeps running)."""
    global _RAY_STARTED
    if _RAY_STARTED:
        import ray

        ray.shutdown()
        _RAY_STARTED = False
