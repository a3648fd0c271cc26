import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from robustbook import consistency as mc
from robustbook.attacks import predict_logits
from robustbook.margins import feature_margin, input_margin, linear_head, logit_margin
from robustbook.train import TrainConfig, train


def test_kendall_tau_matches_scipy_and_skips_failures():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    b = a + 0.5 * b
    ok = np.ones(200, bool)
    ok[:20] = False
    a_nan = a.copy()
    a_nan[:20] = 0.0            # what a silent "margin 0" would look like
    t = mc.kendall_tau(a_nan, b, success=ok, n_boot=100)
    assert t.tau == pytest.approx(kendalltau(a[20:], b[20:]).statistic)
    assert t.points == 180 and t.low < t.tau < t.high
    assert mc.kendall_tau(a, np.where(ok, b, np.nan), n_boot=0).points == 180


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
    logit_tau = mc.kendall_tau(top2[:, -1] - top2[:, -2], margin, n_boot=0).tau
    pm = mc.PseudoMargin(hidden=64, lr=1e-3, epochs=600, patience=200, seed=0).fit(
        z[:400], margin[:400], z[400:500], margin[400:500], progress=False)
    tau = mc.kendall_tau(pm(z[500:]).numpy(), margin[500:], n_boot=0).tau
    assert tau > logit_tau + 0.15
    assert pm.best_epoch <= len(pm.history)


def test_rescaled_model_keeps_decisions_and_margins_but_not_logit_order(digits):
    base = train(TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=10, seed=0), digits, progress=False)
    model = mc.RescaledLogits(base, digits.x_train)
    x = digits.x_test[:120]
    assert torch.equal(predict_logits(model, x).argmax(1), predict_logits(base, x).argmax(1))
    noise = x + 0.2 * torch.randn_like(x)
    assert torch.equal(predict_logits(model, noise).argmax(1), predict_logits(base, noise).argmax(1))
    scale = model.scale(x)
    assert (scale > 0).all() and scale.max() / scale.min() > 5
    fab_options = dict(restarts=1, target_classes=3)
    m_base, m_model = input_margin(base, x, **fab_options), input_margin(model, x, **fab_options)
    both = m_base.success & m_model.success
    assert np.median(np.abs((m_base.distance - m_model.distance)[both].numpy())) < 0.01
    tau_base = mc.kendall_tau(logit_margin(predict_logits(base, x)), m_base.distance, m_base.success, n_boot=0).tau
    tau_model = mc.kendall_tau(logit_margin(predict_logits(model, x)), m_model.distance, m_model.success, n_boot=0).tau
    assert tau_model < tau_base - 0.2


def test_feature_margin_of_an_equidistant_head_is_the_scaled_logit_margin():
    torch.manual_seed(0)
    w = torch.eye(4) * 2.0                   # ||w_i - w_j||_1 = 4 for every pair
    z = torch.randn(50, 4)
    fm = feature_margin(w, torch.zeros(4), z, "Linf")
    assert torch.allclose(fm, logit_margin(z @ w.T).double() / 4)
    assert linear_head(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2)))[1].shape == (2, 3)
    assert linear_head(torch.nn.ReLU()) is None


def test_measure_and_summary_on_a_small_zoo(digits):
    zoo = mc.load_zoo(["standard", "rescaled"], digits, eps=0.1, epochs=2, width=8, attack_steps=2, seed=0)
    x, y = digits.x_test[:40], digits.y_test[:40]
    reports = {n: mc.measure(m, x, y, 0.1, fab_options=dict(n_iter=20), pgd_options=dict(steps=3)) for n, m in zoo.items()}
    table = mc.summary(reports, 0.1, n_boot=5)
    assert list(table.index) == ["standard", "rescaled"]
    assert {"kendall_tau", "auroc", "aupr", "fpr_at_95_tpr", "fab_failures", "robust_accuracy"} <= set(table.columns)
    cost = mc.margin_cost(zoo["standard"], x, fab_options=dict(n_iter=20))
    assert cost["FAB input margin (s)"] > cost["logit margin (s)"] > 0


def test_paper_profile_path_with_a_local_robustbench_checkpoint(tmp_path, monkeypatch):
    """RobustBench model -> margins -> statistics, on 4 random CIFAR-sized inputs (no network)."""
    from robustbook.chapters import resolve
    from robustbook.data import Data
    from robustbook.models import robustbench_architecture, robustbench_checkpoint
    from robustbook.runtime import cache_dir

    params = resolve("02_margin_consistency", "paper")            # RobustBench names validated
    assert params["inconsistent_model"] == "Ding2020MMA"
    torch.manual_seed(0)
    path = robustbench_checkpoint("Standard", "cifar10", "Linf", cache_dir() / "robustbench")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(robustbench_architecture("Standard").state_dict(), path)
    x = torch.rand(4, 3, 32, 32)
    y = torch.arange(4)
    tiny = Data("cifar10", x, y, x, y, x, y, 10)
    zoo = mc.load_zoo(["Standard"], tiny, eps=8 / 255, epochs=1, width=1, attack_steps=1, seed=0)
    report = mc.measure(zoo["Standard"], x, y, 8 / 255, fab_options=dict(n_iter=2), pgd_options=dict(steps=1))
    assert report.logit_margin.shape == (4,) and report.input_margin.distance.shape == (4,)
    assert set(report.detection(8 / 255)) == {"auroc", "aupr", "fpr_at_95_tpr", "non_robust_share"}


def test_linear_head_table(digits):
    zoo = mc.load_zoo(["standard", "rescaled"], digits, eps=0.1, epochs=2, width=8, attack_steps=2, seed=0)
    x, y = digits.x_test[:40], digits.y_test[:40]
    reports = {n: mc.measure(m, x, y, 0.1, fab_options=dict(n_iter=10), pgd_options=dict(steps=2)) for n, m in zoo.items()}
    table = mc.linear_head_table(zoo, reports, x)
    assert np.isnan(table.loc["rescaled"]).all()          # its head is not linear
    assert table.loc["standard", "pair-norm CV"] > 0 and -1 <= table.loc["standard", "tau(logit margin, feature margin)"] <= 1


def test_repair_with_pseudo_margin_reports_before_and_after(digits):
    zoo = mc.load_zoo(["rescaled"], digits, eps=0.1, epochs=2, width=8, attack_steps=2, seed=0)
    model = zoo["rescaled"]
    x, y = digits.x_test[:40], digits.y_test[:40]
    report = mc.measure(model, x, y, 0.1, fab_options=dict(n_iter=20), pgd_options=dict(steps=2))
    pseudo, score, before, after = mc.repair_with_pseudo_margin(
        model, report, digits.x_train[:60], digits.x_val[:30], 0.1, fab_options=dict(n_iter=20), epochs=20, lr=1e-3)
    assert score.shape == (40,) and (score >= 0).all()
    assert before["tau"] == pytest.approx(report.tau(n_boot=0).tau)
    assert set(after) == {"tau", "auroc", "aupr", "fpr_at_95_tpr", "non_robust_share"}
    assert 1 <= pseudo.best_epoch <= 20
