"""Bad input never costs a run, a cache or a wrong number.

A table of bad inputs across the CLI and the Python API: each must fail within seconds (no training),
with a message naming the culprit, and leave the results and the caches untouched.
"""
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import robustbook as rb
from robustbook import abstain, attacks, certify, consistency, margins, measures, zoo
from robustbook.book.cli import main
from robustbook.book.specs import resolve
from robustbook.train import TrainConfig
from robustbook.validate import InvalidArgument

CH1, CH2, CH3, CH4, CH5, CH6 = ("01_local_robustness", "02_margin_consistency", "03_certified_relaxed",
                                "04_avoid_robust_inaccuracy", "05_robustness_metrics", "06_free_selectors")
NAN, INF = float("nan"), float("inf")


def _tiny():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()


X = torch.rand(4, 1, 8, 8)
Y = torch.tensor([0, 1, 2, 3])

# (id, callable, exception, words the message must contain)
API = [
    ("chapter unknown", lambda: resolve("02_nope"), InvalidArgument, ["unknown chapter", "01_local_robustness"]),
    ("profile unknown", lambda: resolve(CH1, "gpu"), InvalidArgument, ["unknown profile", "colab"]),
    ("parameter unknown", lambda: resolve(CH1, "cpu", {"epsilon": 0.1}), InvalidArgument, ["'epsilon'", "valid names"]),
    ("eps negative", lambda: resolve(CH1, "cpu", {"eps": -0.1}), InvalidArgument, ["'eps'", "out of range"]),
    ("eps NaN", lambda: resolve(CH1, "cpu", {"eps": NAN}), InvalidArgument, ["'eps'", "finite"]),
    ("eps string", lambda: resolve(CH1, "cpu", {"eps": "big"}), InvalidArgument, ["'eps'", "must be float"]),
    ("dataset unknown", lambda: resolve(CH1, "cpu", {"dataset": "imagenet"}), InvalidArgument, ["digits, fashion_mnist, mnist"]),
    ("epochs zero", lambda: resolve(CH1, "cpu", {"epochs": 0}), InvalidArgument, ["'epochs'", "out of range"]),
    ("epochs float", lambda: resolve(CH1, "cpu", {"epochs": 2.5}), InvalidArgument, ["'epochs'", "must be int"]),
    ("grid empty", lambda: resolve(CH1, "cpu", {"eps_grid": []}), InvalidArgument, ["'eps_grid'", "non-empty"]),
    ("grid item", lambda: resolve(CH1, "cpu", {"eps_grid": [0.1, 2.0]}), InvalidArgument, ["'eps_grid[]'"]),
    ("eps beyond grid", lambda: resolve(CH1, "cpu", {"eps": 0.5, "eps_grid": [0.0, 0.1]}), InvalidArgument,
     ["eps = 0.5", "eps_grid"]),
    ("seeds repeated", lambda: resolve(CH1, "cpu", {"seeds": [0, 0, 1]}), InvalidArgument, ["'seeds'", "repeats"]),
    ("seed bool", lambda: resolve(CH1, "cpu", {"seeds": [True]}), InvalidArgument, ["'seeds[]'", "int"]),
    ("width too large for memory", lambda: resolve(CH1, "cpu", {"width": 4096}), InvalidArgument, ["width", "GiB"]),
    ("rtk K = classes", lambda: resolve(CH3, "cpu", {"rtk_k": [2, 10]}), InvalidArgument,
     ["rtk_k", "K = 10", "number of classes"]),
    ("groups of another dataset", lambda: resolve(CH3, "cpu", {"groups": "cifar100_superclasses"}), InvalidArgument,
     ["cifar100_superclasses", "fashion_mnist"]),
    ("zoo model unknown", lambda: resolve(CH2, "cpu", {"models": ["standard", "resnet"]}), InvalidArgument,
     ["resnet", "valid choices"]),
    ("repair not in models", lambda: resolve(CH2, "cpu", {"repair_models": ["mma"], "models": ["pgd", "trades"],
                                                          "reference_model": "pgd"}), InvalidArgument,
     ["repair_models", "mma"]),
    ("subset too large", lambda: resolve(CH2, "cpu", {"subset_points": 500}), InvalidArgument, ["subset_points"]),
    ("fab targets = classes", lambda: resolve(CH2, "cpu", {"fab_targets": 10}), InvalidArgument, ["fab_targets"]),
    ("chapter 6 fab targets = classes", lambda: resolve(CH6, "cpu", {"fab_targets": 10}), InvalidArgument,
     ["fab_targets"]),
    ("selector below eps", lambda: resolve(CH4, "cpu", {"selector_eps": 0.05}), InvalidArgument, ["selector_eps"]),
    ("depth too deep", lambda: resolve(CH5, "cpu", {"depths": [1, 6]}), InvalidArgument, ["depths", "28x28"]),
    ("data points beyond the split", lambda: resolve(CH1, "cpu", {"data_points": [60000, 0, 0]}), InvalidArgument,
     ["data_points", "60000", "55000"]),
    ("data points not three", lambda: resolve(CH2, "cpu", {"data_points": [100, 100]}), InvalidArgument,
     ["data_points", "[train, validation, test]"]),
    ("eval points beyond the test subset", lambda: resolve(CH4, "cpu", {"eval_points": 5000}), InvalidArgument,
     ["eval_points", "5000", "1000 test points"]),
    ("pseudo points beyond the validation subset", lambda: resolve(CH2, "cpu", {"pseudo_val_points": 900}),
     InvalidArgument, ["pseudo_val_points", "500 validation points"]),
    ("margin points beyond the digits", lambda: resolve(CH2, "smoke", {"margin_points": 600}), InvalidArgument,
     ["margin_points", "540 test points"]),
    ("natural groups on the digits", lambda: resolve(CH3, "smoke", {"groups": "fashion_mnist"}), InvalidArgument,
     ["groups", "Fashion-MNIST", "derived"]),
    ("selector unknown", lambda: resolve(CH6, "cpu", {"selectors": ["oracle"]}), InvalidArgument,
     ["oracle", "empirical"]),
    ("train NaN eps", lambda: rb.train(TrainConfig(method="pgd", eps=NAN), None), InvalidArgument, ["eps", "finite"]),
    ("train inf lr", lambda: rb.train(TrainConfig(lr=INF), None), InvalidArgument, ["lr", "finite"]),
    ("train zero eps for pgd", lambda: rb.train(TrainConfig(method="pgd", eps=0.0), None), InvalidArgument,
     ["eps", "(0.0"]),
    ("train unknown method", lambda: rb.train(TrainConfig(method="mart"), None), InvalidArgument,
     ["method", "standard, pgd, trades"]),
    ("train unknown optimizer", lambda: rb.train(TrainConfig(optimizer="lbfgs"), None), InvalidArgument,
     ["optimizer", "adam, sgd"]),
    ("zoo unknown recipe", lambda: zoo.config("resnet", eps=0.1), InvalidArgument, ["model", "standard"]),
    ("zoo missing parameter", lambda: zoo.config("pgd", epochs=2, width=4, attack_steps=1, seed=0), InvalidArgument,
     ["pgd", "'eps'"]),
    ("pgd NaN radius", lambda: attacks.pgd(_tiny(), X, Y, NAN), InvalidArgument, ["eps", "finite"]),
    ("pgd empty batch", lambda: attacks.pgd(_tiny(), X[:0], Y[:0], 0.1), InvalidArgument, ["x", "empty"]),
    ("pgd labels mismatch", lambda: attacks.pgd(_tiny(), X, Y[:2], 0.1), InvalidArgument, ["y", "2 labels for 4"]),
    ("bim with L2", lambda: attacks.bim(_tiny(), X, Y, 0.1, "L2"), InvalidArgument, ["norm", "Linf"]),
    ("cw with Linf", lambda: attacks.cw(_tiny(), X, Y, None, "Linf"), InvalidArgument, ["norm", "L2"]),
    ("robust accuracy NaN eps", lambda: attacks.robust_accuracy(_tiny(), X, Y, NAN), InvalidArgument, ["eps"]),
    ("attack unknown", lambda: attacks.attack("mim", _tiny(), X, Y, 0.1), InvalidArgument, ["attack", "fgsm"]),
    ("input margin wrong norm", lambda: margins.input_margin(_tiny(), X, "L1"), InvalidArgument, ["norm", "Linf, L2"]),
    ("input margin non-finite x", lambda: margins.input_margin(_tiny(), X * NAN), InvalidArgument, ["x", "NaN"]),
    ("certify negative radius", lambda: certify.GloroNet(_tiny(), 0.1).certify(X, eps=-1.0), InvalidArgument, ["eps"]),
    ("gloro K = classes", lambda: certify.GloroNet(_tiny(), 0.1, "rtk", K=10), InvalidArgument, ["K = 10", "1 and 9"]),
    ("gloro group out of range", lambda: certify.GloroNet(_tiny(), 0.1, "affinity", groups=[[0, 12]]),
     InvalidArgument, ["groups", "0..9", "12"]),
    ("gloro groups invalid, unused by local", lambda: certify.GloroNet(_tiny(), 0.1, "local", groups=[[0, 12]]),
     InvalidArgument, ["groups", "12"]),
    ("architecture option misspelt", lambda: rb.build_model("cnn", (1, 8, 8), 10, widht=3), InvalidArgument,
     ["'widht'", "valid options", "width"]),
    ("gloro wrong input shape", lambda: certify.GloroNet(_tiny(), 0.1).certify(torch.rand(3, 2)), InvalidArgument,
     ["shape (2,)", "cannot take"]),
    ("logit margin one class", lambda: margins.logit_margin(torch.rand(4, 1)), InvalidArgument, ["logits", "C >= 2"]),
    ("detection one-sided", lambda: consistency.detection(torch.rand(5), torch.ones(5), 0.5), InvalidArgument,
     ["robust", "non-robust"]),
    ("tau with NaN", lambda: rb.stats.kendall_tau([1.0, NAN, 2.0], [1.0, 2.0, 3.0]), InvalidArgument, ["non-finite"]),
    ("tau of empty inputs", lambda: rb.stats.kendall_tau([], []), InvalidArgument, ["at least two points", "got 0"]),
    ("tau of one point", lambda: rb.stats.kendall_tau([1.0], [2.0]), InvalidArgument, ["at least two points"]),
    ("selector unknown (API)", lambda: abstain.make_selector("oracle"), InvalidArgument, ["selector", "empirical"]),
    ("norms NaN margin", lambda: measures.norms(_tiny(), (1, 8, 8), NAN), InvalidArgument, ["margin"]),
    ("dataset subset zero", lambda: rb.data.subset(X, Y, 0), InvalidArgument, ["n", "positive"]),
    ("device unknown", lambda: _with_env("ROBUSTBOOK_DEVICE", "tpu", rb.device), ValueError, ["ROBUSTBOOK_DEVICE", "cpu"]),
    ("threads not a number", lambda: _with_env("ROBUSTBOOK_THREADS", "two", rb.runtime.set_threads), ValueError,
     ["ROBUSTBOOK_THREADS", "positive integer"]),
]


def _with_env(key, value, fn):
    import os

    old = os.environ.get(key)
    os.environ[key] = value
    try:
        return fn()
    finally:
        if old is None:
            os.environ.pop(key)
        else:
            os.environ[key] = old


def _snapshot():
    from robustbook.runtime import cache_dir, results_dir

    files = {}
    for folder in (cache_dir(), results_dir()):
        for p in Path(folder).rglob("*"):
            if p.is_file():
                files[p] = p.stat().st_mtime_ns
    return files


def test_the_table_has_at_least_forty_bad_inputs():
    assert len(API) + len(CLI) >= 40


@pytest.mark.parametrize("case", API, ids=[c[0] for c in API])
def test_bad_input_fails_fast_naming_the_culprit_and_touches_nothing(case):
    _, call, exc, words = case
    before = _snapshot()
    start = time.perf_counter()
    with pytest.raises(exc) as err:
        call()
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"took {elapsed:.1f} s to fail"
    for word in words:
        assert word in str(err.value), f"{word!r} not in: {err.value}"
    assert _snapshot() == before, "a bad input changed the cache or the results"


CLI = [
    (["run", "02_nope"], "unknown chapter '02_nope'"),
    (["run", CH1, "--profile", "gpu"], "unknown profile 'gpu'"),
    (["run", CH1, "-p", "epsilon", "0.1"], "unknown parameter(s) 'epsilon'"),
    (["run", CH1, "-p", "eps", "-0.1"], "parameter 'eps' = -0.1 is out of range"),
    (["run", CH1, "-p", "eps", "nan"], "parameter 'eps' must be float"),
    (["run", CH1, "-p", "dataset", "imagenet"], "valid choices: digits, fashion_mnist, mnist, cifar10, cifar100"),
    (["run", CH1, "-p", "eps", "1" + "0" * 400], "parameter 'eps' = 100000000000... (401 digits) is too large"),
    (["run", CH3, "-p", "gloro_eps", "9" * 320], "parameter 'gloro_eps' = 999999999999... (320 digits) is too large"),
    (["run", CH2, "-p", "margin_points", "5000"], "margin_points = 5000 exceeds the 1000 test points"),
    (["run", CH2, "-p", "data_points", "[100000, 0, 0]"], "data_points: 100000 train points asked"),
    (["run", CH3, "-p", "rtk_k", "[2, 12]"], "K = 12"),
    (["run", CH6, "-p", "robust_models", "['era', 'resnet']"], "robust_models: unknown ['resnet']"),
]


@pytest.mark.parametrize("argv, message", CLI, ids=[m[:40] for _, m in CLI])
def test_cli_refuses_bad_parameters_before_any_work(argv, message, tmp_path, capsys):
    before = _snapshot()
    start = time.perf_counter()
    assert main([*argv, "--output", str(tmp_path / "out.ipynb")]) == 2
    assert time.perf_counter() - start < 5
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.ipynb").exists()       # nothing executed
    assert _snapshot() == before


def _preflight_cases(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    return [
        ("output parent is a file", {}, ["--output", str(a_file / "out.ipynb")], "is a file, not a folder"),
        ("output is a folder", {}, ["--output", str(a_folder)], "is an existing folder"),
        ("threads not a number", {"ROBUSTBOOK_THREADS": "two"}, [], "ROBUSTBOOK_THREADS='two'"),
        ("cache is a file", {"ROBUSTBOOK_CACHE": str(a_file)}, [], "ROBUSTBOOK_CACHE"),
        ("dataset not on disk, offline", {"ROBUSTBOOK_DATA": str(a_folder)}, ["-p", "dataset", "mnist",
                                                                              "-p", "data_points", "[0, 0, 0]"],
         "cannot reach the download"),
    ]


@pytest.mark.parametrize("index", range(5), ids=["output parent is a file", "output is a folder", "threads",
                                                 "cache is a file", "dataset offline"])
def test_what_can_be_known_before_the_first_cell_fails_before_it(index, tmp_path, capsys, monkeypatch,
                                                                 no_network):
    _, env, argv, message = _preflight_cases(tmp_path)[index]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    start = time.perf_counter()
    assert main(["run", CH1, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert time.perf_counter() - start < 15
    assert not list(tmp_path.rglob("*.ipynb"))


# ------------------------------------------------------------------ damaged and foreign cache entries
def test_a_damaged_checkpoint_is_moved_aside_and_retrained(digits, capsys):
    from robustbook.train import checkpoint_path

    cfg = TrainConfig(arch="mlp", arch_options={"width": 8}, epochs=1, seed=11)
    rb.train(cfg, digits)
    path = checkpoint_path(cfg, digits)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])        # truncated
    model = rb.train(cfg, digits)
    out = capsys.readouterr().out
    assert "moved aside" in out and path.name in out and out.count("\n") == 1
    assert list(path.parent.glob(f"{path.name}.bad-*")), "the damaged file was not kept for inspection"
    again = rb.train(cfg, digits)                                               # the retrained entry is good
    assert capsys.readouterr().out == ""
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_a_foreign_checkpoint_is_named_and_never_loaded(digits, capsys):
    from robustbook.runtime import cache_load, cache_save
    from robustbook.train import checkpoint_path

    cfg = TrainConfig(arch="mlp", arch_options={"width": 8}, epochs=1, seed=12)
    path = checkpoint_path(cfg, digits)
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))                     # another architecture, same key
    cache_save(path, other.state_dict(), "model", path.stem)
    model = rb.train(cfg, digits)
    assert "another architecture" in capsys.readouterr().out
    assert model[1].weight.shape == (8, 64)
    assert cache_load(path, "model", path.stem) is not None


def test_a_damaged_margin_entry_is_recomputed(digits, capsys):
    from robustbook.runtime import cache_dir

    model = rb.train(TrainConfig(arch="mlp", arch_options={"width": 8}, epochs=1, seed=13), digits)
    x = digits.x_test[:8]
    first = rb.input_margin(model, x, n_iter=5)
    entry = max((cache_dir() / "margins").glob("*.pt"), key=lambda p: p.stat().st_mtime_ns)
    entry.write_bytes(b"not a cache entry")
    again = rb.input_margin(model, x, n_iter=5)
    assert "moved aside" in capsys.readouterr().out
    assert torch.allclose(first.margin, again.margin)


def test_nothing_non_finite_is_ever_cached(tmp_path):
    from robustbook.runtime import cache_save

    with pytest.raises(FloatingPointError, match="non-finite"):
        cache_save(tmp_path / "x.pt", {"w": torch.tensor([1.0, NAN])}, "model", "k")
    assert not (tmp_path / "x.pt").exists()


def test_a_diverging_training_run_stops_and_caches_nothing(digits):
    from robustbook.train import checkpoint_path

    cfg = TrainConfig(arch="mlp", arch_options={"width": 8}, epochs=2, lr=10.0, optimizer="sgd", momentum=0.0,
                      seed=14, loss_options={"scale": 1.0})
    with pytest.raises(FloatingPointError, match="lr"):
        scaled = digits.__class__(**{**digits.__dict__, "x_train": digits.x_train * 1e20})
        rb.train(cfg, scaled)
    assert not checkpoint_path(cfg, scaled).exists()


def test_results_refuse_to_save_a_hole(tmp_path, monkeypatch):
    from robustbook.book.results import Results

    monkeypatch.setenv("ROBUSTBOOK_RESULTS", str(tmp_path))
    res = Results("ch")
    res.glue("fine", 0.5)
    res.glue("hole", NAN)
    with pytest.raises(ValueError, match="hole"):
        res.save()
    assert not (tmp_path / "ch.json").exists()
    res2 = Results("ch")
    res2.glue("pairs", {"a/certified": {"robust_accuracy_certified": None}}, nullable=("robust_accuracy_certified",))
    assert res2.save().is_file()


def test_numpy_scalars_are_accepted_where_numbers_are():
    """np.float32 / np.int64 (what a reader's numpy code produces) are numbers like float and int."""
    import numpy as np

    assert resolve(CH1, "smoke", {"eps": np.float32(0.05)})["eps"] == pytest.approx(0.05)
    assert resolve(CH1, "smoke", {"epochs": np.int64(3)})["epochs"] == 3
    assert len(rb.data.subset(X, Y, np.int64(2))[1]) == 2
    assert attacks.pgd(_tiny(), X, Y, np.float32(0.1), steps=np.int64(2)).shape == X.shape
    assert certify.GloroNet(_tiny(), np.float32(0.1), "rtk", K=np.int64(2)).K == 2
