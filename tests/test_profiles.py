"""Every chapter runs in the colab and paper profiles: the profiles' datasets, architectures, RobustBench models,
attack settings, selectors and groups, with only the sizes shrunk to seconds (``specs.shrunk``), on stand-in
files in the real formats (``standins``), through the same runner the book uses, offline.
"""
import json
import os
import socket

import pytest

import standins
from conftest import make_project
from robustbook.book import chapters
from robustbook.book.specs import FIRST, KEEP, get, resolve, shrunk

pytestmark = pytest.mark.slow

PROFILES = ("colab", "paper")


def _robustbench_names(runs):
    """The RobustBench models the given (chapter, profile) runs name (the names that are not zoo recipes), per
    dataset."""
    from robustbook.zoo import is_recipe

    names = {}
    for chapter, profile in runs:
        p = resolve(chapter, profile)
        if p.get("dataset") not in ("cifar10", "cifar100"):
            continue
        for key in ("models", "core_model", "robust_model"):
            values = p.get(key)
            for name in ([values] if isinstance(values, str) else values or []):
                if not is_recipe(name):
                    names.setdefault(p["dataset"], set()).add(name)
    return names


@pytest.fixture(scope="session")
def standin_world(tmp_path_factory):
    """Data for every profile, written once per session, and the folder each run's checkpoints go to."""
    data = tmp_path_factory.mktemp("standin-data")
    standins.idx(data / "MNIST" / "raw", 200, 60)
    standins.idx(data / "FashionMNIST" / "raw", 200, 60)
    standins.cifar10(data, per_batch=40, n_test=30)
    standins.cifar100(data, n_train=300, n_test=30)
    standins.cifar10_1(data, 40)
    cache = tmp_path_factory.mktemp("standin-cache")
    return data, cache


@pytest.fixture
def offline(monkeypatch):
    """Connections are refused (the papermill kernel talks to its parent over loopback, which stays open)."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1"):
            raise ConnectionRefusedError("network blocked by the test")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def test_every_count_and_list_parameter_declares_how_it_shrinks():
    for name, chapter in chapters().items():
        for key, param in chapter.params.items():
            if param.kind in (int, list):
                assert param.shrink is not None, f"{name}.{key}"
        # what may not change: datasets, architectures, attack settings, selectors, groups, model names
        for profile in PROFILES:
            changed = shrunk(name, profile)
            for key in changed:
                assert get(name).params[key].shrink not in (None, KEEP), (name, key)
            for key in ("dataset", "autoattack", "gloro_arch", "groups", "models", "selectors", "robust_models",
                        "core_model", "robust_model", "norm"):
                assert key not in changed, (name, profile, key)


def test_a_new_count_parameter_without_a_shrink_value_is_refused():
    from robustbook.book.specs import Chapter, Param, register

    params = {"points": Param(int, "points", low=1)}
    with pytest.raises(AssertionError, match="shrink"):
        register(Chapter("98_loose", "loose", params, {p: {"points": 1} for p in ("smoke", "cpu", "colab", "paper")}))
    assert "98_loose" not in chapters()


def test_first_keeps_the_first_seed():
    for name in chapters():
        assert shrunk(name, "paper")["seeds"] == resolve(name, "paper")["seeds"][:1]
        assert get(name).params["seeds"].shrink == FIRST


def _heavy_models(name, profile):
    """The RobustBench models of a profile too large to run on a CPU in seconds, with their GFLOPs per forward pass:
    even shrunk, ERA fine-tuning and the attacks run thousands of passes of each."""
    from robustbook.book.estimate import forward_flops

    flops = {n: forward_flops(n, dataset) / 1e9
             for dataset, names in _robustbench_names([(name, profile)]).items() for n in names}
    return {n: g for n, g in flops.items() if g > CPU_GFLOPS}


HEAVY = "ROBUSTBOOK_HEAVY_TESTS"
CPU_GFLOPS = 5.0          # forward-pass GFLOPs above which a shrunk run of a RobustBench model takes minutes here


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", list(chapters()))
def test_chapter_runs_in_profile(name, profile, standin_world, tmp_path, monkeypatch, offline):
    import torch

    from robustbook.book.runner import run_chapter

    heavy = _heavy_models(name, profile)
    if heavy and not torch.cuda.is_available() and os.environ.get(HEAVY) != "1":
        listed = ", ".join(f"{n} ({g:.0f} GFLOPs per forward pass)" for n, g in sorted(heavy.items()))
        pytest.skip(f"{listed}: even shrunk, this run takes many minutes on a CPU; run on a GPU or with {HEAVY}=1")

    data, cache = standin_world
    for dataset, names in _robustbench_names([(name, profile)]).items():       # this run's checkpoints
        standins.robustbench(cache / "robustbench", sorted(names), dataset)
    root = make_project(tmp_path)
    monkeypatch.setenv("ROBUSTBOOK_ROOT", str(root))
    monkeypatch.setenv("ROBUSTBOOK_DATA", str(data))
    monkeypatch.setenv("ROBUSTBOOK_CACHE", str(cache))
    monkeypatch.setenv("ROBUSTBOOK_UNVERIFIED_DATA", "1")
    overrides = shrunk(name, profile)
    record = run_chapter(name, profile, overrides, progress=False, into_book=True)
    results = json.loads((root / "_build" / "results" / f"{name}.json").read_text())
    assert record["profile"] == profile and results
    assert record["parameters"]["dataset" if "dataset" in record["parameters"] else "seeds"]
    claims = json.loads((root / "_build" / "results" / f"{name}.claims.json").read_text())
    assert all(c["verdict"] in ("holds", "does not hold", "within noise") for c in claims)
    assert os.environ["ROBUSTBOOK_UNVERIFIED_DATA"] == "1"


def _every_robustbench_model():
    names = _robustbench_names([(c, p) for c in chapters() for p in PROFILES])
    return [(dataset, name) for dataset in sorted(names) for name in sorted(names[dataset])]


@pytest.mark.parametrize("dataset, name", _every_robustbench_model())
def test_every_robustbench_model_a_profile_names_loads_and_answers(dataset, name, standin_world, offline):
    """The runs of the largest WideResNets skip on a CPU (above); their models still load here, through the
    library's real RobustBench path from a checkpoint of their real architecture, and answer with logits and
    input gradients, as every attack needs."""
    import torch

    from robustbook.data import DATASET_INFO
    from robustbook.models import load_robustbench
    from robustbook.runtime import device

    cache = standin_world[1] / "robustbench"
    standins.robustbench(cache, [name], dataset)
    model = load_robustbench(name, dataset, "Linf", model_dir=cache)
    classes, shape = DATASET_INFO[dataset]
    x = torch.rand(2, *shape, device=device(), requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, classes) and torch.isfinite(logits).all() and not model.training
    logits.max(1).values.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gpu_check_without_a_gpu_stops_at_once_saying_so(tmp_path):
    import subprocess
    import sys
    import time

    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: gpu-check would run for minutes")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "robustbook", "gpu-check"], capture_output=True, text=True,
                          env={**os.environ, "ROBUSTBOOK_ROOT": str(make_project(tmp_path))})
    assert done.returncode != 0 and "needs a CUDA device" in done.stderr
    assert time.perf_counter() - start < 30 and not (tmp_path / "_build" / "gpu-check.json").exists()
