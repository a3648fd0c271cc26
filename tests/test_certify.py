"""Soundness of the GloRo certificates (local, relaxed top-K, affinity) and of the Lipschitz bounds."""
import itertools

import pytest
import torch
from torch import nn

from robustbook.attacks import lp_norm, pgd
from robustbook.certify import (GloroNet, UnknownLayer, attack_certificates, cifar100_superclasses, exact_sigma,
                                relaxation_margins, set_change, sigma_from_iterate)
from robustbook.models import MinMax, build_model
from robustbook.train import TrainConfig, train


def _random_problem(seed, n=300, C=6):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, C, generator=g) * 2
    K = torch.rand(C, C, generator=g)
    K = K + K.T
    K.fill_diagonal_(0)
    return y, K


@pytest.mark.parametrize("seed", [0, 1])
def test_rtk_margins_match_brute_force_enumeration(seed):
    y, K = _random_problem(seed)
    eps, k_max = 0.3, 4
    m, order = relaxation_margins(y, K, eps, k_max)
    for n in range(0, len(y), 7):
        for k in range(1, k_max + 1):
            top = order[n, :k].tolist()
            expect = min(float(y[n, j] - y[n, i] - eps * K[j, i]) for j in top for i in range(y.shape[1]) if i not in top)
            assert m[n, k - 1].item() == pytest.approx(expect, abs=1e-5)
            # and brute force over every k-subset: the top-k set is the only one that can be certified
            for subset in itertools.combinations(range(y.shape[1]), k):
                if set(subset) != set(top):
                    worst = min(float(y[n, j] - y[n, i] - eps * K[j, i]) for j in subset for i in range(y.shape[1])
                                if i not in subset)
                    assert worst <= 0 or k == 0


def test_rtk_with_k1_is_the_gloro_bottom_logit_exactly():
    y, K = _random_problem(3)
    m, order = relaxation_margins(y, K, 0.25, 1)
    j = y.argmax(1)
    other = (y + 0.25 * K[j]).masked_fill(torch.nn.functional.one_hot(j, y.shape[1]).bool(), float("-inf"))
    bottom_gloro = other.max(1).values
    # the same number up to float rounding (the two formulas add and subtract in a different order)
    assert torch.allclose(y.max(1).values - m[:, 0], bottom_gloro, atol=1e-6, rtol=0)
    gloro_certified = bottom_gloro < y.max(1).values
    assert torch.equal(m[:, 0] > 0, gloro_certified)


def _gloro_from_logits(weight, bias, eps, **kw):
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return GloroNet(nn.Sequential(nn.Identity(), head), eps, **kw)


@pytest.mark.parametrize("kw", [dict(), dict(relaxation="rtk", K=2), dict(relaxation="affinity", groups=[[0, 1]])])
def test_tied_logits_are_never_certified(kw):
    # identical rows 0 and 1: the two top logits tie everywhere and their difference has Lipschitz constant 0
    w = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    g = _gloro_from_logits(w, torch.zeros(3), eps=0.1, **kw)
    cert = g.certify(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    if kw.get("relaxation") in ("rtk", "affinity"):
        # the pair {0, 1} is certified as a set (it is invariant), but never class 0 or 1 alone
        assert (cert.set_size != 1).all()
    else:
        assert not cert.certified.any()
    y = torch.tensor([[2.0, 2.0, 0.0]])
    m, _ = relaxation_margins(y, torch.ones(3, 3) - torch.eye(3), 0.0, 1)
    assert m[0, 0] == 0 and not (m > 0).any()          # eps = 0 and a tie: margin 0, not certified


def test_affinity_groups_are_validated_and_never_certify_less_than_local():
    net = build_model("mlp", (1, 8, 8), 10, width=16, activation="minmax")
    with pytest.raises(ValueError, match="outside 0..9"):
        GloroNet(net, 0.1, "affinity", groups=[[0, 10]])
    with pytest.raises(ValueError, match="non-empty"):
        GloroNet(net, 0.1, "affinity", groups=[[0, 1], []])
    x = torch.rand(400, 1, 8, 8)
    local = GloroNet(net, 0.02).certify(x)
    aff = GloroNet(net, 0.02, "affinity", groups=[[0, 1, 2], [2, 3]]).certify(x)   # 2 in two groups; 4..9 in none
    assert (aff.certified | ~local.certified).all()                 # certified locally => certified by affinity
    assert local.certified.any()
    for s in aff.certified_set[aff.set_size > 1]:
        members = set(torch.nonzero(s).flatten().tolist())
        assert members <= {0, 1, 2} or members <= {2, 3}


def test_unknown_layers_are_refused():
    with pytest.raises(UnknownLayer, match="BatchNorm1d"):
        GloroNet(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), 0.1)
    with pytest.raises(UnknownLayer, match="overlapping max-pool"):
        GloroNet(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(3, 1), nn.Flatten(), nn.Linear(2 * 4 * 4, 2)), 0.1)
    with pytest.raises(TypeError, match="ending in nn.Linear"):
        GloroNet(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), 0.1)


def test_power_iteration_converges_to_the_exact_spectral_norms():
    torch.manual_seed(0)
    net = build_model("2C2F", (1, 8, 8), 10)
    g = GloroNet(net, 0.1)
    g.certify(torch.rand(2, 1, 8, 8))                    # records the layer input shapes
    converged = torch.tensor(g.converge())
    exact = torch.tensor([float(exact_sigma(layer, shape)) for layer, shape in g._linear_layers()])
    assert (converged <= exact * (1 + 1e-5)).all()       # power iteration approaches from below
    assert float(converged.prod()) == pytest.approx(float(exact.prod()), rel=0.01)
    # the FFT bound used for large inputs is an upper bound of the exact conv norm
    import robustbook.certify as cert

    old = cert.EXACT_CONV_MAX_ENTRIES
    cert.EXACT_CONV_MAX_ENTRIES = 0
    try:
        fft = torch.tensor([float(exact_sigma(layer, shape)) for layer, shape in g._linear_layers()])
    finally:
        cert.EXACT_CONV_MAX_ENTRIES = old
    assert (fft >= exact * (1 - 1e-5)).all()
    # dense layers: SVD
    w = net[-3].weight
    assert float(exact_sigma(net[-3], None)) == pytest.approx(float(torch.linalg.svdvals(w.double())[0]), rel=1e-6)


def _grad_norm(model, x, i, j):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (g,) = torch.autograd.grad((out[:, i] - out[:, j]).sum(), x)
    return g.flatten(1).norm(dim=1)


def test_lipschitz_bound_dominates_gradient_norms_found_by_search(digits):
    torch.manual_seed(0)
    g = train(TrainConfig(arch="2C2F", method="gloro", eps=0.3, epochs=3, eps_warmup=0.5), digits, progress=False)
    K = g.sound_constants()
    gen = torch.Generator().manual_seed(1)
    for i, j in [(0, 1), (3, 5), (4, 9), (7, 2)]:
        x = torch.cat([digits.x_test[:100], torch.rand(100, 1, 8, 8, generator=gen)])
        best = _grad_norm(g, x, i, j)
        for _ in range(100):                              # hill climbing on the gradient norm
            cand = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
            norm = _grad_norm(g, cand, i, j)
            better = norm > best
            x[better], best[better] = cand[better], norm[better]
        assert float(best.max()) <= float(K[i, j]) * (1 + 1e-5)
        assert float(best.max()) > 0.05 * float(K[i, j])  # the search found real gradients


@pytest.fixture(scope="module")
def trained(digits):
    eps = 0.3
    models = {}
    for name, options in {"local": {}, "rtk": {"relaxation": "rtk", "K": 3},
                          "affinity": {"relaxation": "affinity", "groups": [[3, 5, 9], [3, 8, 9], [1, 2, 8], [0, 6]]}}.items():
        cfg = TrainConfig(arch="mlp", arch_options={"width": 128, "activation": "minmax"}, method="gloro", eps=1.1 * eps,
                          epochs=40, eps_warmup=0.5, loss_options={**options, "trades_lambda": 2.0})
        models[name] = train(cfg, digits, progress=False)
    return eps, models


@pytest.mark.parametrize("name", ["local", "rtk", "affinity"])
def test_no_attack_breaks_a_certificate(trained, digits, name):
    """PGD with restarts inside the L2 ball never changes a certified prediction / top-k set / group (>= 1,000 points)."""
    eps, models = trained
    g = models[name]
    x = torch.cat([digits.x_train, digits.x_val, digits.x_test])
    cert = g.certify(x, eps=eps)
    x, mask = x[cert.certified], cert.certified_set[cert.certified]
    assert len(x) >= 1000, f"only {len(x)} certified points"
    x_adv = pgd(g, x, mask, eps, "L2", steps=50, restarts=3, loss_fn=set_change(mask))
    assert float(lp_norm(x_adv - x, "L2").max()) <= eps * (1 + 1e-5)
    with torch.no_grad():
        gap = set_change(mask)(g(x_adv), None)
    assert (gap < 0).all(), f"{int((gap >= 0).sum())} certificates broken"
    # the attack is not idle: it moves points close to the edge of what the certificate allows
    assert float(gap.max()) > float(set_change(mask)(g(x), None).max())
    if name == "local":
        assert (cert.radius[cert.certified] > eps).all() and (cert.radius[~cert.certified] <= eps).all()


def test_cifar100_superclasses_and_the_paper_architecture_on_tiny_inputs():
    groups = cifar100_superclasses()
    assert len(groups) == 20 and all(len(g) == 5 for g in groups)
    assert sorted(c for g in groups for c in g) == list(range(100))
    torch.manual_seed(0)
    net = build_model("4C3F", (3, 32, 32), 100)
    for relaxation, kw in [("rtk", {"K": 5}), ("affinity", {"groups": groups})]:
        g = GloroNet(net, 36 / 255, relaxation, **kw)
        cert = g.certify(torch.rand(4, 3, 32, 32))
        assert cert.certified_set.shape == (4, 100) and (cert.set_size <= 5).all()
        g.train()
        assert g.augmented(torch.rand(2, 3, 32, 32)).shape == (2, 101)


def test_sigma_from_iterate_is_differentiable():
    layer = nn.Linear(5, 3)
    v = torch.randn(1, 5)
    sigma_from_iterate(layer, v).backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert isinstance(MinMax()(torch.randn(2, 4)), torch.Tensor)


def test_guarantee_ordering_holds_on_one_net(trained, digits):
    eps, models = trained
    table, ordered = __import__("robustbook.certify", fromlist=["x"]).guarantee_ordering(
        models, digits.x_test, digits.y_test, eps, [[3, 5, 9], [3, 8, 9], [1, 2, 8], [0, 6]])
    assert ordered and list(table.columns) == ["local", "affinity", "rtk3"]
