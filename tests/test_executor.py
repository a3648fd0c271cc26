"""The executor: units run serially or on a local Ray; nothing is computed twice, a failing unit is retried, an
interrupted run resumes from the finished units, and chapters give the same numbers on Ray as serially."""
import json
import os
import sys

import pytest
import torch

import faults
from conftest import make_project
from robustbook import executor, zoo
from robustbook.runtime import cache_load

pytestmark = pytest.mark.slow


def _square(v):
    return {"value": torch.tensor(float(v) ** 2)}


def _units(folder, n=4):
    return [executor.Unit(f"unit {i}", folder / f"u{i}.pt", "test", f"u{i}", _square, (i,)) for i in range(n)]


@pytest.fixture
def local_ray(monkeypatch, tmp_path):
    """A local Ray (this machine's 2 cores) started for the test with its environment, stopped after it."""
    pytest.importorskip("ray")
    import ray

    executor.shutdown()
    monkeypatch.setenv(executor.RAY, "auto")
    monkeypatch.setenv("ROBUSTBOOK_FAULT_DIR", str(tmp_path))
    monkeypatch.setenv(executor.TASK_WRAPPER, "faults:wrap")
    for module in (faults, sys.modules[__name__]):       # the workers do not have tests/ on their path
        ray.cloudpickle.register_pickle_by_value(module)
    yield tmp_path
    executor.shutdown()


def test_serial_runs_the_missing_units_once_and_skips_cached_ones(tmp_path, monkeypatch):
    monkeypatch.delenv(executor.RAY, raising=False)
    monkeypatch.setenv(executor.UNIT_LOG, str(tmp_path / "log"))
    units = _units(tmp_path)
    assert executor.run(units) == 4
    assert all(cache_load(u.path, "test", u.key)["value"].item() == i ** 2 for i, u in enumerate(units))
    assert executor.run(_units(tmp_path, 6)) == 2                         # only the two new ones
    assert (tmp_path / "log").read_text().splitlines() == [f"unit {i}" for i in (0, 1, 2, 3, 4, 5)]


def test_backend_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(executor.RAY, raising=False)
    assert executor.backend() is None
    monkeypatch.setenv(executor.RAY, "auto")
    assert executor.backend() == "auto"
    monkeypatch.setenv(executor.RAY, "head:6379")
    assert executor.backend() == "head:6379"
    monkeypatch.setenv(executor.RAY, "cluster")
    assert executor.backend() == "cluster"


def test_on_ray_a_unit_that_raises_once_is_retried_and_the_driver_writes_every_entry(local_ray, monkeypatch):
    monkeypatch.setenv("ROBUSTBOOK_FAULT", "once")
    executor.shutdown()                                                   # the workers take the new environment
    units = _units(local_ray / "cache")
    assert executor.run(units) == 4
    tries = (local_ray / "tries").read_text().splitlines()
    assert sorted(tries) == sorted([u.name for u in units] * 2)          # every unit: a failed try, then a good one
    assert [cache_load(u.path, "test", u.key)["value"].item() for u in units] == [0.0, 1.0, 4.0, 9.0]


def test_an_interrupted_run_resumes_without_recomputing_finished_units(local_ray, monkeypatch):
    monkeypatch.setenv("ROBUSTBOOK_FAULT", "unit 2")                     # unit 2 fails on every try: the run stops
    monkeypatch.setenv(executor.UNIT_LOG, str(local_ray / "submitted"))
    executor.shutdown()
    with pytest.raises(Exception, match="injected fault in unit 2"):
        executor.run(_units(local_ray / "cache"))
    finished = [u.name for u in _units(local_ray / "cache") if u.done]
    assert "unit 2" not in finished and len(finished) >= 1
    monkeypatch.setenv("ROBUSTBOOK_FAULT", "")
    executor.shutdown()
    assert executor.run(_units(local_ray / "cache")) == 4 - len(finished)  # the finished units are not submitted
    submitted = (local_ray / "submitted").read_text().splitlines()
    assert submitted[4:] == [f"unit {i}" for i in range(4) if f"unit {i}" not in finished]
    assert all(u.done for u in _units(local_ray / "cache"))


def test_models_trained_on_ray_match_the_serial_ones(local_ray, monkeypatch, digits):
    params = dict(eps=0.1, epochs=1, width=4, attack_steps=1)
    monkeypatch.setenv("ROBUSTBOOK_CACHE", str(local_ray / "ray-cache"))
    on_ray = zoo.load_seeds(["standard", "pgd"], digits, [0, 1], **params)
    monkeypatch.delenv(executor.RAY)
    monkeypatch.setenv("ROBUSTBOOK_CACHE", str(local_ray / "serial-cache"))
    torch.set_num_threads(1)                                               # a Ray task's one thread
    try:
        serial = zoo.load_seeds(["standard", "pgd"], digits, [0, 1], **params)
    finally:
        torch.set_num_threads(int(os.environ.get("ROBUSTBOOK_THREADS", "2")))
    for s in (0, 1):
        for name in ("standard", "pgd"):
            for a, b in zip(on_ray[s][name].state_dict().values(), serial[s][name].state_dict().values()):
                assert torch.allclose(a, b, atol=1e-5), (s, name)
    assert len(list((local_ray / "ray-cache" / "models").glob("*.pt"))) == 4


def _leaves(value, key=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{key}.{k}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, value


@pytest.mark.parametrize("name", ["02_margin_consistency", "05_robustness_metrics"])
def test_a_chapter_on_a_local_ray_gives_the_serial_numbers(name, tmp_path, monkeypatch):
    """Chapters 2 and 5 (smoke) serially and on a local Ray, each from an empty cache: the same results JSON up to
    float order (Ray tasks use one thread: differences below 1e-4 in accuracies and taus are allowed)."""
    pytest.importorskip("ray")
    from robustbook.book.runner import run_chapter

    results = {}
    for mode in ("serial", "ray"):
        (tmp_path / mode).mkdir()
        root = make_project(tmp_path / mode)
        monkeypatch.setenv("ROBUSTBOOK_ROOT", str(root))
        monkeypatch.setenv("ROBUSTBOOK_CACHE", str(root / "cache"))
        monkeypatch.setenv("ROBUSTBOOK_THREADS", "1")
        monkeypatch.setenv(executor.UNIT_LOG, str(root / "units"))
        if mode == "ray":
            monkeypatch.setenv(executor.RAY, "auto")
        else:
            monkeypatch.delenv(executor.RAY, raising=False)
        run_chapter(name, "smoke", progress=False, into_book=True)
        results[mode] = dict(_leaves(json.loads((root / "_build" / "results" / f"{name}.json").read_text())))
        units = (root / "units").read_text().splitlines() if (root / "units").exists() else []
        assert units, f"{mode}: no unit was submitted"
    assert results["serial"].keys() == results["ray"].keys()
    for key, value in results["serial"].items():
        if "seconds" in key or "cost" in key:
            continue
        assert results["ray"][key] == pytest.approx(value, abs=1e-4), key


def test_the_study_gives_the_same_rows_on_ray_and_in_process(local_ray, monkeypatch, digits):
    from robustbook import measures

    monkeypatch.setenv("ROBUSTBOOK_CACHE", str(local_ray / "models"))
    models = [zoo.load(zoo.grid_name(p), digits, epochs=1, seed=0) for p in zoo.grid(["adam"], [1], [1, 2], [4], [0.0])]
    # a spectral-norm model cannot be pickled to a worker: it is measured in the driver instead
    models.append(zoo.load("spectral_norm", digits, epochs=1, width=4, seed=0))
    attacks = {"fgsm": {"eps": 0.1}}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                # as a Ray task runs (the driver measures one model)
    try:
        monkeypatch.setenv("ROBUSTBOOK_CACHE", str(local_ray / "a"))
        a = measures.study(models, digits, attacks, attack_points=20, sharpness_points=30)
        assert len(list((local_ray / "a" / "study").glob("*.pt"))) == 3
        monkeypatch.delenv(executor.RAY)
        monkeypatch.setenv("ROBUSTBOOK_CACHE", str(local_ray / "b"))
        b = measures.study(models, digits, attacks, attack_points=20, sharpness_points=30)
    finally:
        torch.set_num_threads(threads)
    assert a.quantities == b.quantities
    assert a.measures == b.measures


def test_attack_verdicts_and_fab_margins_run_as_units_shard_by_shard(local_ray, monkeypatch, digits):
    """AutoAttack verdicts and FAB margins of several models: the missing shards are units (on a local Ray here),
    the driver writes them, and every call then reads the same numbers a serial run computes; cached shards are
    never submitted again; a model that cannot travel (spectral norm) is computed in the driver."""
    from robustbook import attacks, margins

    models = [zoo.load("standard", digits, epochs=1, width=4, seed=s) for s in (0, 1)]
    models.append(zoo.load("spectral_norm", digits, epochs=1, width=4, seed=0))
    x = digits.x_test[:60]
    verdicts = [dict(model=m, x=x, eps=0.1, setting="smoke", batch_size=25) for m in models]
    fab_requests = [dict(model=m, x=x, n_iter=5, targeted=1, batch_size=25) for m in models]
    monkeypatch.setenv(executor.UNIT_LOG, str(local_ray / "submitted"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                        # as a Ray task runs
    try:
        monkeypatch.setenv("ROBUSTBOOK_CACHE", str(local_ray / "ray"))
        flags = attacks.robust_flags_many(verdicts)
        found = margins.input_margin_many(fab_requests)
        submitted = (local_ray / "submitted").read_text().splitlines()
        assert len(submitted) == 2 * 3 + 2 * 3                       # 2 portable models x 3 shards, twice
        assert attacks.robust_flags_many(verdicts) and margins.input_margin_many(fab_requests)
        assert len((local_ray / "submitted").read_text().splitlines()) == len(submitted)   # nothing again
        monkeypatch.delenv(executor.RAY)
        monkeypatch.setenv("ROBUSTBOOK_CACHE", str(local_ray / "serial"))
        serial_flags = [attacks.robust_flags(**r) for r in verdicts]
        serial_found = [margins.input_margin(**r) for r in fab_requests]
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(flags, serial_flags):
        assert torch.equal(a, b)
    for a, b in zip(found, serial_found):
        assert torch.equal(a.success, b.success)
        assert torch.allclose(a.margin, b.margin, atol=1e-5)
