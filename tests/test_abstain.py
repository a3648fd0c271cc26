"""ERA metrics, selectors, and the composed model: its formula, an end-to-end attack checked against a closed form,
and a certificate the attack never contradicts."""
import pytest
import torch
from torch import nn

import robustbook as rb
from robustbook import abstain
from robustbook.attacks import predict_logits
from robustbook.certify import GloroNet


def test_robustness_metrics_partition_the_points():
    correct = torch.tensor([1, 1, 1, 0, 0, 1, 0, 1], dtype=torch.bool)
    robust = torch.tensor([1, 1, 0, 1, 0, 0, 0, 1], dtype=torch.bool)
    m = abstain.robustness_metrics(correct, robust)
    assert m["r_rob_acc"] == 3 / 8 and m["r_rob_inacc"] == 1 / 8
    assert m["nonrobust_acc"] == 2 / 8 and m["nonrobust_inacc"] == 2 / 8
    assert m["abstain_robust_accuracy"] == pytest.approx(3 / 4) and m["r_nat"] == 5 / 8


def test_compositional_formula():
    s = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    robust = abstain.Indicators(correct=torch.tensor([1, 0, 0, 0]).bool(), robust=torch.ones(4).bool())
    core = abstain.Indicators(correct=torch.tensor([0, 0, 1, 1]).bool(), robust=torch.tensor([0, 0, 1, 0]).bool())
    out = abstain.compositional(s, robust, core)
    assert out["natural_accuracy"] == 0.75 and out["robust_accuracy"] == 0.5
    assert out["r_rob_inacc"] == 0.25 and out["selected"] == 0.5


def test_empirical_robustness_is_judged_against_the_own_prediction(digits):
    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=10), digits)
    x = digits.x_test[:100]
    assert abstain.empirically_robust(model, x, 0.001, steps=5).float().mean() > 0.95
    assert abstain.empirically_robust(model, x, 0.5, steps=20).float().mean() < 0.05


def test_era_makes_wrong_points_non_robust_on_the_synthetic_example():
    toy = rb.load_dataset("synthetic", seed=0)
    params = dict(seed=0, synthetic_epochs=20, synthetic_eps=0.1, synthetic_beta=0.2)
    x, y = toy.x_train, toy.y_train
    out = {name: abstain.evaluate(rb.zoo.load(f"synthetic_{name}", toy, **params), x, y, 0.1, attack_name="pgd",
                                  steps=50, restarts=1) for name in ("trades", "era")}
    assert out["era"]["r_rob_inacc"] < out["trades"]["r_rob_inacc"]
    assert out["era"]["r_rob_acc"] >= out["trades"]["r_rob_acc"] - 0.02


# ------------------------------------------------------------------ the composed model against a closed form
class Axis(nn.Module):
    """Logits k * [0.5 - x_axis, x_axis - 0.5]: class 1 iff x_axis > 0.5, logit margin 2k |x_axis - 0.5|."""

    def __init__(self, axis: int, k: float = 5.0):
        super().__init__()
        self.axis, self.k = axis, k
        self.anchor = nn.Parameter(torch.zeros(()))     # gives the model a device

    def forward(self, x):
        v = x[:, self.axis:self.axis + 1] - 0.5 + 0 * self.anchor
        return self.k * torch.cat([-v, v], 1)


EPS, GAP = 0.05, 0.1          # threat radius; the selector accepts |x1 - 0.5| > GAP


def _closed_form(x: torch.Tensor) -> torch.Tensor:
    """For labels y = [x1 > 0.5] and x1 > 0.5: the composed model (robust model on x1 where |x1 - 0.5| > GAP, core on
    x0 elsewhere) is robust at x iff no point of the Linf ball reaches the unselected band while the core is wrong:
    not (x0 - eps < 0.5 and x1 - eps <= 0.5 + GAP)."""
    return ~((x[:, 0] - EPS < 0.5) & (x[:, 1] - EPS <= 0.5 + GAP))


def test_end_to_end_attack_finds_exactly_the_closed_form_counterexamples():
    g = torch.linspace(0.02, 0.98, 25)
    xs = torch.cartesian_prod(g, g)
    xs = xs[xs[:, 1] > 0.5 + 0.01]
    # keep points away from the closed form's boundaries, where float rounding decides
    away = ((xs[:, 0] - EPS - 0.5).abs() > 0.01) & ((xs[:, 1] - EPS - 0.5 - GAP).abs() > 0.01)
    x = xs[away]
    y = torch.ones(len(x), dtype=torch.long)
    robust = Axis(1)
    selector = abstain.logit_margin_selector(robust, threshold=2 * robust.k * GAP)
    composed = abstain.ComposedModel(Axis(0), robust, selector)
    out = abstain.attack_composed(composed, x, y, EPS, steps=30)
    expected = _closed_form(x)
    assert (~expected).any() and expected.any()
    assert torch.equal(out["robust"], expected), "the attack missed a counterexample or broke a robust point"
    clean_wrong = composed.predict(x) != y
    assert all(out["found_by"][i] == "clean" for i in torch.nonzero(clean_wrong).flatten().tolist())
    assert all(out["found_by"][i] for i in torch.nonzero(~expected & ~clean_wrong).flatten().tolist())
    # the formula counts the selected, robust-model-robust points as robust: it overstates
    core_flags = abstain.Indicators(predict_logits(composed.core, x).argmax(1) == y, torch.ones(len(x), dtype=torch.bool))
    rob_flags = abstain.Indicators(torch.ones(len(x), dtype=torch.bool), (x[:, 1] - 0.5).abs() > EPS)
    formula = abstain.compositional(selector.select(x), rob_flags, core_flags)["robust_accuracy"]
    assert formula > out["robust"].double().mean().item()


def test_composed_certificate_is_never_contradicted_by_the_attack():
    toy = rb.load_dataset("blobs", means=[(0.25, 0.3), (0.75, 0.7)], stds=[(0.08, 0.08)] * 2, counts=[200, 200], seed=1)
    net = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 64, "depth": 2, "activation": "minmax"},
                                  method="gloro", eps=0.15, epochs=30, eps_warmup=0.5, seed=0), toy)
    core = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=20, seed=0), toy)
    eps, rho = 0.04, 0.04
    composed = abstain.ComposedModel(core, net, abstain.CertifiedSelector(net, rho))
    x, y = toy.x_test, toy.y_test
    certified = abstain.certify_composed(composed, x, y, eps)
    attacked = abstain.attack_composed(composed, x, y, eps, steps=40, restarts=2)
    assert certified.sum() >= 100, f"only {int(certified.sum())} certified points"
    assert not (certified & ~attacked["robust"]).any(), "a certified point was broken"
    everywhere = abstain.Indicators(torch.ones(len(x), dtype=torch.bool), torch.ones(len(x), dtype=torch.bool))
    report = abstain.evaluate_composed(composed, x, y, eps, everywhere, everywhere, steps=10)
    assert report["certificate_violations"] == 0 and report["robust_accuracy_certified"] is not None
    assert report["certified_points"] == int(certified.sum())


def test_certify_composed_needs_the_certified_selector(digits):
    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 16}, epochs=1), digits)
    composed = abstain.ComposedModel(model, model, abstain.logit_margin_selector(model))
    with pytest.raises(ValueError, match="certified selector"):
        abstain.certify_composed(composed, digits.x_test[:4], digits.y_test[:4], 0.1)
    with pytest.raises(ValueError, match="GloroNet"):
        abstain.CertifiedSelector(model, 0.1)


def test_threshold_selector_fits_a_share_on_validation_data(digits):
    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=3), digits)
    sel = abstain.logit_margin_selector(model).fit(digits.x_val, 0.3)
    assert sel.select(digits.x_val).double().mean().item() == pytest.approx(0.3, abs=0.02)
    assert not abstain.logit_margin_selector(model).fit(digits.x_val, 0.0).select(digits.x_val).any()
    assert abstain.logit_margin_selector(model).fit(digits.x_val, 1.0).select(digits.x_val).all()


def test_selector_cost_is_relative_to_a_forward_pass(digits):
    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 16}, epochs=1), digits)
    x = digits.x_test[:50]
    cheap = abstain.selector_cost(abstain.logit_margin_selector(model), model, x, repeats=3)
    dear = abstain.selector_cost(abstain.EmpiricalSelector(model, 0.1, steps=10, restarts=1), model, x, repeats=3)
    assert dear["cost_over_forward"] > 5 * cheap["cost_over_forward"]


def test_gloro_selector_on_a_cnn_is_valid_but_loose(digits):
    model = rb.zoo.load("standard", digits, eps=0.1, epochs=2, width=4, attack_steps=1, seed=0)
    sel = abstain.CertifiedSelector(GloroNet(model, 0.1), 0.1)
    assert sel.select(digits.x_test[:20]).double().mean() < 0.5


@pytest.mark.parametrize("profile", ["smoke", "cpu", "colab", "paper"])
@pytest.mark.parametrize("chapter", ["04_avoid_robust_inaccuracy", "06_free_selectors"])
def test_the_end_to_end_attack_is_never_weaker_on_a_route_than_the_components_own(chapter, profile):
    """Settings as the chapters derive them: AutoAttack as the headline's, PGD routes with the selector's
    steps and restarts at least."""
    from robustbook.book import resolve

    p = resolve(chapter, profile)
    e2e = abstain.composed_attack(p["e2e_steps"], p.get("e2e_restarts", 1), p["autoattack"], p["selector_steps"],
                                  p["selector_restarts"])
    assert e2e.autoattack == p["autoattack"]
    assert e2e.steps >= max(p["selector_steps"], p["e2e_steps"])
    assert e2e.restarts >= max(p["selector_restarts"], p.get("e2e_restarts", 1))
    weaker = abstain.composed_attack(1, 1, p["autoattack"], p["selector_steps"] + 5, p["selector_restarts"] + 1)
    assert (weaker.steps, weaker.restarts) == (p["selector_steps"] + 5, p["selector_restarts"] + 1)


def test_the_end_to_end_attack_breaks_what_autoattack_breaks_on_the_core(digits):
    """A selector that selects nothing leaves the core everywhere: the end-to-end attack (with AutoAttack on the
    route) is at least as strong as AutoAttack on the core alone, and counts each point it broke once."""
    core = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=5, seed=3), digits)
    robust = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=5, seed=4), digits)
    x, y = digits.x_test[:120], digits.y_test[:120]
    nothing = abstain.logit_margin_selector(robust).fit(digits.x_val, 0.0)
    composed = abstain.ComposedModel(core, robust, nothing)
    correct = rb.attacks.predict_logits(core, x).argmax(1) == y
    alone = correct & rb.robust_flags(core, x, 0.1, setting="smoke")           # the core's headline verdicts
    weak = abstain.attack_composed(composed, x, y, 0.1, steps=1, restarts=1)
    strong = abstain.attack_composed(composed, x, y, 0.1, steps=1, restarts=1, autoattack="smoke")
    assert not (strong["robust"] & ~alone).any()                                 # never weaker than AutoAttack alone
    assert strong["robust"].sum() <= weak["robust"].sum()
    assert sum(strong["broken_by"].values()) == int((~strong["robust"]).sum())   # each broken point counted once
    assert strong["broken_by"]["AutoAttack on the core model"] > 0


def test_the_composed_model_routes_each_input_through_the_one_model_that_answers_it(digits):
    core = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 16}, epochs=2, seed=1), digits)
    robust = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 16}, epochs=2, seed=2), digits)
    x = digits.x_test[:64]
    half = abstain.logit_margin_selector(robust).fit(digits.x_val, 0.5)
    composed = abstain.ComposedModel(core, robust, half)
    chosen = half.select(x)
    assert 0 < int(chosen.sum()) < len(x)
    seen = []
    hook = robust.register_forward_hook(lambda m, inputs, out: seen.append(len(inputs[0])))
    xg = x.clone().requires_grad_(True)
    logits = composed(xg)
    hook.remove()
    assert seen[-1] == int(chosen.sum())                     # the robust model saw only the inputs it answers
    expected = torch.where(chosen[:, None], robust(x), core(x))
    assert torch.allclose(logits, expected, atol=1e-6)
    (grad,) = torch.autograd.grad(logits.sum(), xg)           # gradients still flow through the answering model
    assert grad.abs().sum() > 0


def test_the_end_to_end_attack_skips_broken_points_without_changing_a_verdict(digits):
    """A route attacks only the points no earlier route broke: the verdicts are those of attacking each point on its
    own (batch of one), and the PGD routes never see a point the clean input already breaks."""
    core = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=3, seed=3), digits)
    robust = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=3, seed=4), digits)
    x, y = digits.x_test[:60], digits.y_test[:60]
    composed = abstain.ComposedModel(core, robust, abstain.logit_margin_selector(robust).fit(digits.x_val, 0.5))
    clean_wrong = int((composed.predict(x) != y).sum())
    assert clean_wrong > 0
    grad_batches = []
    hook = core.register_forward_hook(lambda m, inputs, out: grad_batches.append(len(inputs[0]))
                                      if inputs[0].requires_grad else None)
    together = abstain.attack_composed(composed, x, y, 0.05, steps=5)
    hook.remove()
    assert grad_batches and max(grad_batches) <= len(x) - clean_wrong
    alone = [abstain.attack_composed(composed, x[i:i + 1], y[i:i + 1], 0.05, steps=5)["robust"] for i in range(len(x))]
    assert torch.equal(together["robust"], torch.cat(alone))
    assert sum(together["broken_by"].values()) == int((~together["robust"]).sum())
