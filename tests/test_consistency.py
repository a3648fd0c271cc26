"""Margin consistency: statistics, every point counted, the pseudo-margin, the rescaled model."""
import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

import robustbook as rb
from robustbook import consistency as mc
from robustbook.attacks import predict_logits
from robustbook.margins import MinimumNorm
from robustbook.margins import input_margin, logit_margin
from robustbook.stats import kendall_tau
from robustbook.train import TrainConfig, train


def test_kendall_tau_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    b = a + 0.5 * b
    t = kendall_tau(a, b, n_boot=100)
    assert t.tau == pytest.approx(kendalltau(a, b).statistic)
    assert t.points == 200 and t.low < t.tau < t.high


def test_failed_points_are_counted_as_most_robust_not_dropped():
    """Three points where FAB failed: they enter tau and detection at the search's bound."""
    dist = torch.tensor([0.05, 0.2, 0.3, float("nan"), 0.08, float("nan"), float("nan")])
    success = ~torch.isnan(dist)
    r = MinimumNorm(torch.zeros(7, 1), dist, success, bound=1.0)
    assert r.failures == 3
    assert torch.equal(r.margin, torch.tensor([0.05, 0.2, 0.3, 1.0, 0.08, 1.0, 1.0]))
    logit = torch.tensor([0.1, 0.4, 0.6, 2.0, 0.2, 3.0, 2.5])
    tau = kendall_tau(logit, r.margin, n_boot=0)
    assert tau.points == 7                                  # nobody dropped
    det = mc.detection(-logit, r.margin, eps=0.1)
    assert det["non_robust_share"] == pytest.approx(2 / 7)  # failures count as robust


def test_per_class_tau():
    a = np.arange(12.0)
    cls = np.array([0] * 6 + [1] * 6)
    b = np.concatenate([np.arange(6.0), -np.arange(6.0)])
    assert mc.per_class_tau(a, b, cls) == {0: pytest.approx(1.0), 1: pytest.approx(-1.0)}


def test_detection_metrics_on_a_perfect_and_a_reversed_score():
    d = np.linspace(0, 1, 101)
    perfect = mc.detection(-d, d, eps=0.3)
    assert perfect["auroc"] == pytest.approx(1.0) and perfect["aupr"] == pytest.approx(1.0)
    assert perfect["fpr_at_95_tpr"] == 0.0
    reversed_ = mc.detection(d, d, eps=0.3)
    assert reversed_["auroc"] == pytest.approx(0.0) and reversed_["fpr_at_95_tpr"] == 1.0


def test_theorem_threshold_is_perfect_exactly_for_consistent_samples():
    rng = np.random.default_rng(1)
    d_in = rng.uniform(0, 1, 300)
    consistent = mc.separating_threshold(3 * d_in ** 2 + 1, d_in, eps=0.4)   # monotone: perfect
    assert consistent["perfect"] and consistent["errors"] == 0
    assert np.sum(d_in <= 0.4) == np.sum(3 * d_in ** 2 + 1 <= consistent["threshold"])
    scrambled = mc.separating_threshold(rng.permutation(d_in), d_in, eps=0.4)
    assert not scrambled["perfect"] and scrambled["errors"] > 30


def test_subset_estimate_is_exact_for_a_consistent_sample():
    rng = np.random.default_rng(2)
    d_in = rng.uniform(0, 1, 1000)
    correct = rng.uniform(size=1000) < 0.9
    est = mc.subset_robust_accuracy(np.log(d_in), d_in, correct, eps=0.3, n_fit=200)
    assert est["error"] < 0.01 and est["evaluated_points"] == 800


def test_pseudo_margin_learns_a_margin_hidden_in_rescaled_logits():
    rng = np.random.default_rng(3)
    margin = rng.uniform(0.01, 0.5, 600)
    base = np.stack([margin, np.zeros(600), -rng.uniform(0.5, 1, 600)], 1)
    z = base * np.exp(rng.normal(size=(600, 1)))                       # scrambles the logit margin
    top2 = np.sort(z, 1)
    logit_tau = kendall_tau(top2[:, -1] - top2[:, -2], margin, n_boot=0).tau
    pm = mc.PseudoMargin(hidden=64, lr=1e-3, epochs=600, patience=200, seed=0).fit(
        z[:400], margin[:400], z[400:500], margin[400:500])
    tau = kendall_tau(pm(z[500:]).numpy(), margin[500:], n_boot=0).tau
    assert tau > logit_tau + 0.15
    assert pm.best_epoch <= len(pm.history)


def test_pseudo_margin_refuses_nan_targets():
    with pytest.raises(ValueError, match="finite"):
        mc.PseudoMargin(epochs=2).fit(np.zeros((4, 3)), [0.1, np.nan, 0.2, 0.3], np.zeros((2, 3)), [0.1, 0.2])


def test_rescaled_model_keeps_decisions_and_margins_but_not_logit_order(digits):
    base = train(TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=10, seed=0), digits)
    model = mc.RescaledLogits(base, digits.x_train)
    x = digits.x_test[:120]
    assert torch.equal(predict_logits(model, x).argmax(1), predict_logits(base, x).argmax(1))
    noise = x + 0.2 * torch.randn_like(x)
    assert torch.equal(predict_logits(model, noise).argmax(1), predict_logits(base, noise).argmax(1))
    scale = model.scale(x)
    assert (scale > 0).all() and scale.max() / scale.min() > 5
    m_base, m_model = input_margin(base, x), input_margin(model, x)
    assert np.median(np.abs((m_base.margin - m_model.margin).numpy())) < 0.01
    tau_base = kendall_tau(logit_margin(predict_logits(base, x)), m_base.margin, n_boot=0).tau
    tau_model = kendall_tau(logit_margin(predict_logits(model, x)), m_model.margin, n_boot=0).tau
    assert tau_model < tau_base - 0.2


def test_measure_report_row_and_cost(digits):
    model = rb.zoo.load("standard", digits, eps=0.1, epochs=2, width=8, attack_steps=2, seed=0)
    x, y = digits.x_test[:40], digits.y_test[:40]
    report = mc.measure(model, x, y, 0.1, fab_options=dict(n_iter=20), attack_options=dict(setting="smoke"))
    row = report.row(0.1, n_boot=5)
    assert {"kendall_tau", "auroc", "aupr", "fpr_at_95_tpr", "fab_failures", "robust_accuracy"} <= set(row)
    assert 0 <= row["robust_accuracy"] <= row["clean_accuracy"] <= 1
    cost = mc.margin_cost(model, x, fab_options=dict(n_iter=20))
    assert cost["fab_seconds"] > cost["logit_margin_seconds"] > 0


def test_linear_head_stats(digits):
    zoo = {n: rb.zoo.load(n, digits, eps=0.1, epochs=2, width=8, attack_steps=2, seed=0) for n in ("pgd", "rescaled")}
    x, y = digits.x_test[:40], digits.y_test[:40]
    reports = {n: mc.measure(m, x, y, 0.1, fab_options=dict(n_iter=10), attack_options=dict(setting="smoke"))
               for n, m in zoo.items()}
    assert np.isnan(list(mc.linear_head_stats(zoo["rescaled"], reports["rescaled"], x).values())).all()
    stats = mc.linear_head_stats(zoo["pgd"], reports["pgd"], x)
    assert stats["pair_norm_cv"] > 0 and -1 <= stats["tau_feature_margin"] <= 1


def test_repair_with_pseudo_margin_reports_before_and_after(digits):
    model = rb.zoo.load("rescaled", digits, eps=0.1, epochs=2, width=8, attack_steps=2, seed=0)
    base = rb.zoo.load("pgd", digits, eps=0.1, epochs=2, width=8, attack_steps=2, seed=0)
    x, y = digits.x_test[:40], digits.y_test[:40]
    report = mc.measure(model, x, y, 0.1, fab_options=dict(n_iter=20), attack_options=dict(setting="smoke"))
    r = mc.repair_with_pseudo_margin(
        model, report, digits.x_train[:60], digits.x_val[:30], 0.1, fab_options=dict(n_iter=20), epochs=20, lr=1e-3,
        margin_model=base)
    assert r.score.shape == (40,) and (r.score >= 0).all()
    assert torch.allclose(r.score, r.pseudo(report.logits))
    assert r.before["tau"] == pytest.approx(report.tau(n_boot=0).tau)
    assert set(r.after) == {"tau", "auroc", "aupr", "fpr_at_95_tpr", "non_robust_share"}
    assert r.tau_gain == pytest.approx(r.after["tau"] - r.before["tau"])
    assert 1 <= r.pseudo.best_epoch <= 20


@pytest.mark.slow
def test_paper_profile_path_with_a_local_robustbench_checkpoint(no_network):
    """RobustBench model -> margins -> statistics, on 4 random CIFAR-sized inputs (network blocked)."""
    from robustbook.book import resolve
    from robustbook.data import Data
    from robustbook.models import robustbench_architecture, robustbench_checkpoint
    from robustbook.runtime import cache_dir

    params = resolve("02_margin_consistency", "paper")            # RobustBench names validated
    assert params["repair_models"] == ["Ding2020MMA"]
    torch.manual_seed(0)
    path = robustbench_checkpoint("Standard", "cifar10", "Linf", cache_dir() / "robustbench")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(robustbench_architecture("Standard").state_dict(), path)
    x = torch.rand(4, 3, 32, 32)
    y = torch.arange(4)
    tiny = Data("cifar10", x, y, x, y, x, y, 10)
    model = rb.zoo.load("Standard", tiny)
    report = mc.measure(model, x, y, 8 / 255, fab_options=dict(n_iter=2, targeted=1),
                        attack_options=dict(setting="smoke"))
    assert report.logit_margin.shape == (4,) and report.margin.shape == (4,)


def test_measure_many_equals_one_measure_per_model_and_shares_margins_where_decisions_are_the_same(digits):
    params = dict(eps=0.1, epochs=1, width=4, attack_steps=1)
    zoos = rb.zoo.load_seeds(["pgd", "rescaled"], digits, [0], **params)
    x, y = digits.x_test[:30], digits.y_test[:30]
    fab_options, attack = dict(n_iter=10, targeted=1), dict(setting="smoke")
    many = mc.measure_many(zoos, x, y, 0.1, "Linf", fab_options, attack, {"rescaled": "pgd"})
    one = mc.measure(zoos[0]["pgd"], x, y, 0.1, "Linf", fab_options, attack)
    assert torch.equal(many[0]["pgd"].margin, one.margin) and torch.equal(many[0]["pgd"].robust, one.robust)
    assert many[0]["rescaled"].input_margin is many[0]["pgd"].input_margin        # reused, not estimated again
    assert not torch.equal(many[0]["rescaled"].logit_margin, one.logit_margin)     # its own logits
