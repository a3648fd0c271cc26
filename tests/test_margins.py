"""Margins: the exact linear margin in the box, FAB against it, caching by model, inputs, options and code."""
import pytest
import torch

from robustbook.margins import (compare_to_exact, feature_margin, input_margin, linear_head, linear_input_margin,
                                logit_margin, pairwise_distances)
from robustbook.train import TrainConfig, train


@pytest.fixture(scope="module")
def linear(digits):
    cfg = TrainConfig(arch="linear", epochs=200, lr=1e-2, batch_size=len(digits.y_train), seed=0)
    return train(cfg, digits)


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


def test_the_book_s_fab_matches_the_exact_linear_margin(linear, digits):
    x = digits.x_test[:200]
    exact = linear_input_margin(linear[1].weight, linear[1].bias, x)
    r = input_margin(linear, x, "Linf")
    cmp = compare_to_exact(r.distance, exact)
    assert r.failures == 0
    assert cmp["below_exact"] == 0                 # FAB returns real adversarial points: never below
    assert cmp["median_relative_gap"] <= 0.01
    assert cmp["agreement"] >= 0.99
    default = compare_to_exact(input_margin(linear, x, targeted=0, untargeted=1, bisection_steps=0).distance, exact)
    assert default["agreement"] < cmp["agreement"]


def test_compare_to_exact_counts_violations_and_failures():
    cmp = compare_to_exact(torch.tensor([1.0, 0.5, 2.0, float("nan")]), torch.tensor([1.0, 1.0, 2.0 - 1e-4, 1.0]))
    assert cmp["below_exact"] == 1 and cmp["agreement"] == pytest.approx(2 / 4) and cmp["failures"] == 1


def test_input_margins_are_cached_by_model_inputs_and_options(linear, digits):
    from robustbook.runtime import cache_dir

    x = digits.x_test[:20]
    folder = cache_dir() / "margins"
    before = set(folder.glob("*.pt")) if folder.exists() else set()
    first = input_margin(linear, x, "Linf", targeted=1)
    assert len(set(folder.glob("*.pt")) - before) == 1
    again = input_margin(linear, x, "Linf", targeted=1)
    assert torch.equal(first.margin, again.margin) and torch.equal(first.success, again.success)
    input_margin(linear, x, "Linf", targeted=2)          # other options: another entry
    input_margin(linear, x[:10], "Linf", targeted=1)     # other inputs: another entry
    assert len(set(folder.glob("*.pt")) - before) == 3
    fresh = input_margin(linear, x, "Linf", cache=False, targeted=1)
    assert torch.allclose(fresh.margin, first.margin)


def test_pairwise_distances_are_exact_for_100_classes():
    """torch.cdist switches to a matrix-multiply shortcut beyond 25 rows; ours is the plain difference."""
    g = torch.Generator().manual_seed(0)
    w = 1000 + torch.randn(100, 64, generator=g, dtype=torch.float64) * 1e-4     # far from 0, close together
    brute = torch.tensor([[float(torch.sqrt(((w[i] - w[j]) ** 2).sum())) for j in range(100)] for i in range(100)],
                         dtype=torch.float64)
    assert torch.allclose(pairwise_distances(w, 2), brute, rtol=1e-12, atol=0)
    shortcut = torch.cdist(w[None].float(), w[None].float())[0].double()
    assert (shortcut - brute).abs().max() > 1e-4          # the shortcut is visibly off here


def test_feature_margin_of_an_equidistant_head_is_the_scaled_logit_margin():
    torch.manual_seed(0)
    w = torch.eye(4) * 2.0                   # ||w_i - w_j||_1 = 4 for every pair
    z = torch.randn(50, 4)
    fm = feature_margin(w, torch.zeros(4), z, "Linf")
    assert torch.allclose(fm, logit_margin(z @ w.T).double() / 4)
    assert linear_head(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2)))[1].shape == (2, 3)
    assert linear_head(torch.nn.ReLU()) is None
