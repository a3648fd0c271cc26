"""Claims are judged on seeds: a failing enforced claim fails the build, a reported one never does."""
import json
import os
import textwrap

import pytest

from conftest import make_project
from robustbook.book.results import FAILS, HOLDS, NOISE, ClaimFailed, Results, judge
from robustbook.stats import OverSeeds


@pytest.mark.parametrize("values, relation, threshold, verdict", [
    ([0.30, 0.32, 0.31], ">=", 0.2, HOLDS),          # clear gain
    ([0.21, 0.19, 0.23], ">=", 0.2, NOISE),          # near the threshold: within one std
    ([0.05, 0.06, 0.04], ">=", 0.2, FAILS),          # clearly below
    ([0.5], ">=", 0.5, HOLDS),                       # one seed, on the threshold, >= holds
    ([0.5], ">", 0.5, FAILS),                        # ... but > does not
    ([0, 0, 0], "==", 0, HOLDS),
    ([0, 1, 0], "==", 0, FAILS),
    ([0.01, 0.02], "<=", 0.05, HOLDS),
])
def test_verdicts_use_the_spread_over_seeds(values, relation, threshold, verdict):
    assert judge(values, relation, threshold)[0] == verdict


def test_a_gain_must_exceed_its_spread():
    # mean gain 0.06 over a threshold of 0.05 is not a gain when the seeds spread by 0.03
    assert judge([0.03, 0.06, 0.09], ">=", 0.05)[0] == NOISE
    assert judge([0.09, 0.10, 0.11], ">=", 0.05)[0] == HOLDS


def test_judge_refuses_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        judge([0.1, float("nan")], ">=", 0.0)
    with pytest.raises(ValueError, match="valid choices"):
        judge([0.1], "~", 0.0)


def test_enforce_raises_naming_the_claim_and_the_numbers():
    res = Results("x")
    res.claim("models are robust", OverSeeds({0: 0.1, 1: 0.12, 2: 0.11}), ">=", 0.5, "a paper")
    res.claim("a finding that does not reproduce", OverSeeds({0: 0.1, 1: 0.1, 2: 0.1}), ">=", 0.5, "a paper",
              enforce=False, reason="scale")
    with pytest.raises(ClaimFailed) as err:
        res.enforce()
    message = str(err.value)
    assert "models are robust" in message and "0.110" in message and ">= 0.500" in message
    assert "does not reproduce" not in message
    table = res.claims_table()
    assert list(table["verdict"]) == ["**does not hold**", "does not reproduce here"]
    assert table.loc[1, "note"] == "scale"


CHAPTER = textwrap.dedent('''\
    # %% tags=["parameters"]
    profile = "cpu"
    measured = None
    enforce = None

    # %%
    from robustbook.book import start
    from robustbook.book.specs import Chapter, Param, register
    same = {"measured": [0.1], "enforce": True}
    register(Chapter("99_claims", "claims test", {"measured": Param(list, "measured", item=float, shrink="<keep>"),
                                                  "enforce": Param(bool, "enforce")},
                     {p: same for p in ("smoke", "cpu", "colab", "paper")}))
    P, res = start("99_claims", globals())
    if P.measured == [0.42]:                     # a damaged cache entry met inside the chapter
        from robustbook.runtime import cache_dir, quarantine
        bad = cache_dir() / "damaged.pt"
        bad.write_bytes(b"half a checkpoint")
        quarantine(bad, "damaged")
    res.glue("mean", sum(P.measured) / len(P.measured))
    res.claim("the measured value is at least one half", dict(enumerate(P.measured)), ">=", 0.5, "the test",
              enforce=P.enforce, reason="a reported finding")
    res.save()
    res.enforce(True)
    ''')


@pytest.fixture
def claims_project(tmp_path):
    from robustbook.book.specs import Chapter, Param, _registry

    root = make_project(tmp_path)
    (root / "notebooks" / "99_claims.py").write_text(CHAPTER)
    params = {"measured": Param(list, "measured", item=float, shrink="<keep>"), "enforce": Param(bool, "enforce")}
    same = {"measured": [0.1, 0.12, 0.11], "enforce": True}
    profiles = {p: same for p in ("cpu", "colab", "paper")}
    profiles["smoke"] = {**same, "enforce": False}           # the side run of the comparison must not stop
    _registry["99_claims"] = Chapter("99_claims", "claims test", params, profiles)
    old = os.environ.get("ROBUSTBOOK_ROOT")
    os.environ["ROBUSTBOOK_ROOT"] = str(root)
    try:
        yield root
    finally:
        _registry.pop("99_claims")
        if old is None:
            os.environ.pop("ROBUSTBOOK_ROOT")
        else:
            os.environ["ROBUSTBOOK_ROOT"] = old


def test_a_failing_enforced_claim_fails_the_build_and_keeps_the_old_results(claims_project):
    from robustbook.book.runner import ChapterFailed, run_chapter

    run_chapter("99_claims", overrides={"measured": [0.9, 0.8, 0.85]}, progress=False, into_book=True)
    results = claims_project / "_build" / "results" / "99_claims.json"
    kept = json.loads(results.read_text())
    with pytest.raises(ChapterFailed) as err:
        run_chapter("99_claims", overrides={"measured": [0.1, 0.12, 0.11]}, progress=False, into_book=True)
    message = str(err.value)
    assert "99_claims" in message and "ClaimFailed" in message
    assert "the measured value is at least one half" in message and "0.110" in message
    assert "Traceback" not in message and "full traceback" in message
    log = claims_project / "_build" / "logs" / "99_claims.log"
    assert "Traceback" in log.read_text() or "ClaimFailed" in log.read_text()
    assert json.loads(results.read_text()) == kept               # the failed run left the results as they were


def test_a_claim_reported_as_not_reproducing_does_not_fail_the_build(claims_project):
    from robustbook.book.runner import run_chapter

    record = run_chapter("99_claims", overrides={"measured": [0.1, 0.12, 0.11], "enforce": False}, progress=False, into_book=True)
    assert record["seconds"] > 0
    claims = json.loads((claims_project / "_build" / "results" / "99_claims.claims.json").read_text())
    assert claims[0]["shown"] == "does not reproduce here" and claims[0]["reason"] == "a reported finding"


def _book_files(root):
    return {p.relative_to(root): p.read_bytes() for folder in (root / "_build" / "results", root / "book" / "notebooks")
            if folder.is_dir() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_of_another_profile_leaves_the_books_results_and_notebooks_byte_for_byte(claims_project):
    from robustbook.book.runner import book_profile, run_chapter

    run_chapter("99_claims", "cpu", overrides={"measured": [0.9, 0.8, 0.85]}, progress=False, into_book=True)
    assert book_profile() == "cpu"
    before = _book_files(claims_project)
    assert any(p.name == "99_claims.json" for p in before) and any(p.suffix == ".ipynb" for p in before)

    smoke = run_chapter("99_claims", "smoke", progress=False)                  # the reader's quick check
    custom = run_chapter("99_claims", "cpu", overrides={"measured": [0.7, 0.7, 0.7]}, progress=False)
    assert _book_files(claims_project) == before                               # nothing of the book changed
    assert not smoke["into_book"] and not custom["into_book"]
    side = claims_project / "_build" / "runs"
    assert json.loads((side / "smoke" / "results" / "99_claims.json").read_text())["mean"] == pytest.approx(0.11)
    assert json.loads((side / "cpu-custom" / "results" / "99_claims.json").read_text())["mean"] == pytest.approx(0.7)
    assert (side / "smoke" / "99_claims.ipynb").is_file() and book_profile() == "cpu"

    run_chapter("99_claims", "smoke", progress=False, into_book=True)          # on purpose: the book becomes smoke
    assert book_profile() == "smoke" and _book_files(claims_project) != before


def test_claims_table_says_where_the_verdict_differs_from_the_smoke_profile(claims_project):
    from robustbook.book.runner import run_chapter

    run_chapter("99_claims", "smoke", progress=False)                          # side run: measured 0.11, fails
    run_chapter("99_claims", "cpu", overrides={"measured": [0.9, 0.8, 0.85], "enforce": False}, progress=False,
                into_book=True)
    values = json.loads((claims_project / "_build" / "results" / "99_claims.json").read_text())
    compared = values["claims_on_smoke_profile"]["the measured value is at least one half"]
    assert compared["mean"] == pytest.approx(0.11) and compared["verdict"] == FAILS
    claims = json.loads((claims_project / "_build" / "results" / "99_claims.claims.json").read_text())
    assert claims[0]["compared"]["verdict"] == FAILS and claims[0]["verdict"] == HOLDS
    res = Results("99_claims", "cpu")
    res.claim("the measured value is at least one half", {0: 0.9, 1: 0.8}, ">=", 0.5, "the test")
    note = res.claims_table().loc[0, "note"]
    assert "0.110" in note and "0.850" in note and "smoke profile" in note


def test_a_cache_notice_inside_a_chapter_reaches_the_terminal(claims_project, capsys):
    from robustbook.book.runner import run_chapter

    run_chapter("99_claims", "cpu", overrides={"measured": [0.42], "enforce": False}, progress=False, into_book=True)
    err = capsys.readouterr().err
    assert "99_claims: robustbook: cache entry" in err and "damaged; moved aside" in err
