import pytest
import torch

from robustbook.margins import compare_to_exact, input_margin, linear_input_margin, logit_margin
from robustbook.train import TrainConfig, train


@pytest.fixture(scope="module")
def linear(digits):
    cfg = TrainConfig(arch="linear", epochs=200, lr=1e-2, batch_size=len(digits.y_train), seed=0)
    return train(cfg, digits, progress=False)


def test_logit_margin():
    logits = torch.tensor([[3.0, 1.0, 2.5], [0.0, 0.0, -1.0]])
    assert torch.allclose(logit_margin(logits), torch.tensor([0.5, 0.0]))


def _optimal_point(weight, bias, x, t):
    """The point the closed form says is reachable at radius t, built coordinate by coordinate."""
    x = x.flatten().double()
    w, b = weight.double(), bias.double()
    i = int((w @ x + b).argmax())
    best = None
    for j in range(len(b)):
        if j == i:
            continue
        v = w[i] - w[j]
        delta = torch.where(v > 0, -torch.minimum(torch.full_like(x, t), x), torch.minimum(torch.full_like(x, t), 1 - x))
        delta = torch.where(v == 0, torch.zeros_like(delta), delta)
        gap = float(v @ (x + delta) + b[i] - b[j])
        if best is None or gap < best[0]:
            best = (gap, x + delta)
    return best


def test_exact_margin_is_tight(linear, digits):
    """At the exact margin some class ties with the prediction; slightly inside it none does."""
    w, b = linear[1].weight.detach(), linear[1].bias.detach()
    x = digits.x_test[:40]
    exact = linear_input_margin(w, b, x)
    for xi, t in zip(x, exact.tolist()):
        gap_at, point = _optimal_point(w, b, xi, t)
        assert abs(gap_at) < 1e-8 and float(point.min()) >= 0 and float(point.max()) <= 1
        assert _optimal_point(w, b, xi, 0.999 * t)[0] > 0


def test_box_free_margin_is_the_dual_norm_formula(linear, digits):
    w, b = linear[1].weight.detach().double(), linear[1].bias.detach().double()
    x = digits.x_test[:30].flatten(1).double()
    logits = x @ w.T + b
    i = logits.argmax(1)
    expected = torch.tensor([
        min(float(logits[n, i[n]] - logits[n, j]) / float((w[i[n]] - w[j]).abs().sum()) for j in range(10) if j != i[n])
        for n in range(len(x))])
    assert torch.allclose(linear_input_margin(w, b, digits.x_test[:30], box=False), expected.double())
    assert (linear_input_margin(w, b, digits.x_test[:30]) >= expected - 1e-12).all()   # the box only helps


def test_fab_matches_the_exact_linear_margin(linear, digits):
    x = digits.x_test[:200]
    exact = linear_input_margin(linear[1].weight, linear[1].bias, x)
    r = input_margin(linear, x, "Linf", restarts=2, target_classes=9)
    cmp = compare_to_exact(r.distance, exact)
    assert r.failures == 0
    assert cmp["below_exact"] == 0                 # FAB returns real adversarial points: never below
    assert cmp["median_relative_gap"] <= 0.01
    assert cmp["agreement"] >= 0.99


def test_compare_to_exact_counts_violations():
    cmp = compare_to_exact(torch.tensor([1.0, 0.5, 2.0]), torch.tensor([1.0, 1.0, 2.0 - 1e-4]))
    assert cmp["below_exact"] == 1 and cmp["agreement"] == pytest.approx(2 / 3)


def test_input_margins_are_cached_by_model_inputs_and_options(linear, digits):
    from robustbook.runtime import cache_dir

    x = digits.x_test[:20]
    before = set((cache_dir() / "margins").glob("*.pt")) if (cache_dir() / "margins").exists() else set()
    first = input_margin(linear, x, "Linf", restarts=1, target_classes=1)
    added = set((cache_dir() / "margins").glob("*.pt")) - before
    assert len(added) == 1
    again = input_margin(linear, x, "Linf", restarts=1, target_classes=1)
    assert torch.equal(torch.nan_to_num(first.distance), torch.nan_to_num(again.distance))
    assert torch.equal(first.success, again.success)
    input_margin(linear, x, "Linf", restarts=1, target_classes=2)          # other options: another entry
    input_margin(linear, x[:10], "Linf", restarts=1, target_classes=1)     # other inputs: another entry
    assert len(set((cache_dir() / "margins").glob("*.pt")) - before) == 3
    fresh = input_margin(linear, x, "Linf", cache=False, restarts=1, target_classes=1)
    assert torch.allclose(fresh.distance, first.distance, equal_nan=True)
