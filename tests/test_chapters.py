"""Chapter parameters are validated before any work; every chapter runs under the smoke profile."""
import json
import time

import jupytext
import pytest

from conftest import ROOT
from robustbook import book
from robustbook.chapters import PROFILES, ParameterError, chapters, parse_value, resolve
from robustbook.cli import main

CH1 = "01_local_robustness"

BAD = [
    (dict(chapter="02_nope"), "unknown chapter '02_nope'; valid choices: 01_local_robustness"),
    (dict(profile="gpu"), "unknown profile 'gpu'; valid choices: smoke, cpu, paper"),
    (dict(overrides={"epsilon": 0.1}), "unknown parameter(s) 'epsilon' for chapter 01_local_robustness; valid names: dataset"),
    (dict(overrides={"eps": -0.1}), "parameter 'eps' = -0.1 is out of range"),
    (dict(overrides={"eps": "big"}), "parameter 'eps' must be float"),
    (dict(overrides={"dataset": "imagenet"}), "valid choices: digits, mnist, cifar10, cifar100"),
    (dict(overrides={"arch": "resnet"}), "valid choices: mlp, cnn"),
    (dict(overrides={"epochs": 0}), "parameter 'epochs' = 0 is out of range"),
    (dict(overrides={"epochs": 2.5}), "parameter 'epochs' must be int"),
    (dict(overrides={"eps_grid": []}), "parameter 'eps_grid' must be a non-empty list"),
    (dict(overrides={"eps_grid": [0.1, 2.0]}), "parameter 'eps_grid[]' = 2.0 is out of range"),
    (dict(overrides={"margin_points": -5}), "parameter 'margin_points' = -5 is out of range"),
    (dict(overrides={"seed": True}), "parameter 'seed' must be int"),
    (dict(overrides={"eps": 0.5, "eps_grid": [0.0, 0.1]}), "eps = 0.5 lies beyond eps_grid"),
]


@pytest.mark.parametrize("case, message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_parameters_are_refused_with_the_valid_choices(case, message):
    with pytest.raises(ParameterError) as err:
        resolve(case.get("chapter", CH1), case.get("profile", "cpu"), case.get("overrides"))
    assert message in str(err.value)


@pytest.mark.parametrize("case, message", BAD[:6], ids=[m[:40] for _, m in BAD[:6]])
def test_cli_refuses_bad_parameters_before_any_work(case, message, tmp_path, capsys):
    argv = ["run", case.get("chapter", CH1), "--profile", case.get("profile", "cpu"), "--output", str(tmp_path / "out.ipynb")]
    for name, value in case.get("overrides", {}).items():
        argv += ["-p", name, repr(value) if not isinstance(value, str) else value]
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 5
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.ipynb").exists()       # nothing executed


def test_parse_value():
    assert parse_value("0.2") == 0.2 and parse_value("[0, 0.1]") == [0, 0.1] and parse_value("digits") == "digits"


def test_profiles_are_complete_and_valid():
    for name in chapters():
        for profile in PROFILES:
            params = resolve(name, profile)
            assert params["profile"] == profile


@pytest.mark.parametrize("name", list(chapters()))
def test_notebook_parameters_cell_leaves_values_to_the_profile(name):
    nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    namespace = {}
    exec(cells[0].source, namespace)
    assert namespace["profile"] == "cpu"
    assert {k for k in namespace if not k.startswith("__")} == {"profile", *chapters()[name].params}
    assert all(namespace[k] is None for k in chapters()[name].params)


@pytest.mark.parametrize("name", list(chapters()))
def test_colab_notebook_exists_is_in_sync_and_installs_the_library(name):
    assert book.sync_colab(check=True) == []
    nb = jupytext.read(ROOT / "notebooks" / f"{name}.ipynb")
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source.strip() == book.COLAB_CELL.strip()


@pytest.mark.parametrize("name", list(chapters()))
def test_chapter_executes_under_smoke_profile(smoke_runs, book_project, name):
    record = smoke_runs[name]
    if isinstance(record, Exception):
        raise record
    assert record["profile"] == "smoke"
    results = json.loads((book_project / "_build" / "results" / f"{name}.json").read_text())
    assert results, "the chapter wrote no results"


def test_chapter_1_results_have_the_documented_keys(smoke_runs, book_project):
    results = json.loads((book_project / "_build" / "results" / f"{CH1}.json").read_text())
    for key in ("eps", "standard_clean_accuracy", "standard_robust_accuracy", "adversarial_clean_accuracy",
                "adversarial_robust_accuracy", "linear_margin_agreement", "linear_margin_median_relative_gap",
                "linear_margin_below_exact", "fab_failures"):
        assert key in results
    assert results["linear_margin_below_exact"] == 0
    assert 0 <= results["standard_robust_accuracy"] <= results["standard_clean_accuracy"] <= 1


def test_start_validates_seeds_and_returns_a_recorder():
    from robustbook.chapters import start

    params, res = start(CH1, {"profile": "smoke", "eps": 0.05})
    assert params["eps"] == 0.05 and params["profile"] == "smoke" and res.chapter == CH1
    with pytest.raises(ParameterError, match="valid choices"):
        start(CH1, {"profile": "smoke", "dataset": "imagenet"})
