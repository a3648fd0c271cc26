"""Soundness of the GloRo certificates (local, relaxed top-K, affinity), in floating point too."""
import copy
import itertools

import pytest
import torch
from torch import nn

import robustbook as rb
from robustbook.attacks import lp_norm, pgd
from robustbook.certify import (LOGIT_SLACK, GloroNet, UnknownLayer, as_relaxation, attack_certificates,
                                cifar100_superclasses, derive_groups, exact_sigma, relaxation_margins, set_change,
                                sigma_from_iterate)
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
            for subset in itertools.combinations(range(y.shape[1]), k):
                if set(subset) != set(top):      # only the top-k set can be certified
                    worst = min(float(y[n, j] - y[n, i] - eps * K[j, i]) for j in subset for i in range(y.shape[1])
                                if i not in subset)
                    assert worst <= 0


def test_rtk_with_k1_is_the_gloro_bottom_logit():
    y, K = _random_problem(3)
    m, order = relaxation_margins(y, K, 0.25, 1)
    j = y.argmax(1)
    other = (y + 0.25 * K[j]).masked_fill(torch.nn.functional.one_hot(j, y.shape[1]).bool(), float("-inf"))
    bottom_gloro = other.max(1).values
    # the same number up to float rounding (the two formulas add and subtract in a different order)
    assert torch.allclose(y.max(1).values - m[:, 0], bottom_gloro, atol=1e-6, rtol=0)
    assert torch.equal(m[:, 0] > 0, bottom_gloro < y.max(1).values)


def _gloro_from_logits(weight, bias, eps, **kw):
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return GloroNet(nn.Sequential(nn.Identity(), head), eps, **kw)


@pytest.mark.parametrize("kw", [dict(), dict(relaxation="rtk", K=2), dict(relaxation="affinity", groups=[[0, 1]])])
def test_tied_logits_are_never_certified(kw):
    w = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])      # rows 0 and 1 tie everywhere
    g = _gloro_from_logits(w, torch.zeros(3), eps=0.1, **kw)
    cert = g.certify(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    if kw.get("relaxation") in ("rtk", "affinity"):
        assert (cert.set_size != 1).all()          # the pair may be certified as a set, never 0 or 1 alone
    else:
        assert not cert.certified.any()
    m, _ = relaxation_margins(torch.tensor([[2.0, 2.0, 0.0]]), torch.ones(3, 3) - torch.eye(3), 0.0, 1)
    assert m[0, 0] == 0 and not (m > 0).any()


def test_a_100_class_head_matches_a_float64_brute_force():
    """Pair constants of a 100-class head, against explicit float64 norms (cdist's shortcut would be off)."""
    torch.manual_seed(0)
    head = nn.Linear(32, 100)
    with torch.no_grad():
        head.weight.copy_(50 + 1e-3 * torch.randn(100, 32))       # far from 0, rows close together
    net = GloroNet(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), head), 0.1)
    net.trace((16,))
    K = net.sound_constants()
    w = head.weight.detach().double()
    sigma = torch.linalg.svdvals(net.model[0].weight.detach().double())[0]
    brute = torch.tensor([[float(sigma * torch.sqrt(((w[j] - w[i]) ** 2).sum())) for i in range(100)]
                          for j in range(100)], dtype=torch.float64)
    assert K.dtype == torch.float64
    assert (K >= brute).all(), "a pair constant came out below the exact value"
    assert torch.allclose(K, brute, rtol=1e-8, atol=1e-300)


def test_a_float32_certificate_never_certifies_what_float64_does_not(digits):
    """The same trained net evaluated in float32 (as certified) and in float64: every float32 certificate holds in
    float64 too, thanks to the rounded-up constants and the float slack."""
    net = train(TrainConfig(arch="mlp", arch_options={"width": 64, "activation": "minmax"}, method="gloro", eps=0.3,
                            epochs=8, eps_warmup=0.5), digits)
    x = torch.cat([digits.x_test, digits.x_train[:500]])
    for eps in (0.05, 0.2, 0.3, 0.35):
        c32 = net.certify(x, eps=eps)
        net64 = GloroNet(copy.deepcopy(net.model).double(), eps).eval()
        net64.trace((1, 8, 8))
        y64, K64, m64, _ = net64.margins(x.double(), eps=eps)
        exact = m64[:, 0] > 0
        assert not (c32.certified & (c32.set_size == 1) & ~exact).any(), f"float32 certified more than float64 at {eps}"
    with torch.no_grad():
        y = net(x)
        y64 = net64(x.double())
    assert float((y.double() - y64).abs().max()) < 0.1 * LOGIT_SLACK * (1 + float(y64.abs().max()))


def test_layers_the_bound_cannot_handle_are_refused():
    with pytest.raises(UnknownLayer, match="BatchNorm1d"):
        GloroNet(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), 0.1)
    with pytest.raises(UnknownLayer, match="overlapping max-pool"):
        GloroNet(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(3, 1), nn.Flatten(), nn.Linear(2 * 4 * 4, 2)), 0.1)
    with pytest.raises(UnknownLayer, match="reflect"):
        GloroNet(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten(),
                               nn.Linear(2 * 8 * 8, 2)), 0.1)
    with pytest.raises(UnknownLayer, match="circular"):
        GloroNet(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.Flatten(),
                               nn.Linear(2 * 8 * 8, 2)), 0.1)
    with pytest.raises(TypeError, match="ending in nn.Linear"):
        GloroNet(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), 0.1)


def test_dropout_is_refused_while_training():
    net = GloroNet(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)), 0.1)
    net.trace((4,))
    assert net.certify(torch.rand(5, 4)).certified.shape == (5,)     # eval mode: dropout is the identity
    net.train()
    with pytest.raises(UnknownLayer, match="1/\\(1-p\\)"):
        net.augmented(torch.rand(5, 4))


def test_affinity_groups_are_validated_and_never_certify_less_than_local():
    net = build_model("mlp", (1, 8, 8), 10, width=16, activation="minmax")
    with pytest.raises(ValueError, match="outside 0..9"):
        GloroNet(net, 0.1, "affinity", groups=[[0, 10]])
    with pytest.raises(ValueError, match="non-empty"):
        GloroNet(net, 0.1, "affinity", groups=[[0, 1], []])
    x = torch.rand(400, 1, 8, 8)
    local = GloroNet(net, 0.02).certify(x)
    aff = GloroNet(net, 0.02, "affinity", groups=[[0, 1, 2], [2, 3]]).certify(x)
    assert (aff.certified | ~local.certified).all()                 # certified locally => certified by affinity
    assert local.certified.any()
    for s in aff.certified_set[aff.set_size > 1]:
        members = set(torch.nonzero(s).flatten().tolist())
        assert members <= {0, 1, 2} or members <= {2, 3}


def test_power_iteration_converges_to_the_sound_norms_from_below():
    torch.manual_seed(0)
    g = GloroNet(build_model("2C2F", (1, 8, 8), 10), 0.1)
    g.certify(torch.rand(2, 1, 8, 8))
    converged = torch.tensor(g.converge(), dtype=torch.float64)
    exact = torch.stack([exact_sigma(layer, shape) for _, layer, shape in g._linear_layers()])
    assert (converged <= exact * (1 + 1e-5)).all()
    assert float(converged.prod()) == pytest.approx(float(exact.prod()), rel=0.01)
    import robustbook.certify as cert

    old = cert.EXACT_CONV_MAX_ENTRIES
    cert.EXACT_CONV_MAX_ENTRIES = 0
    try:
        fft = torch.stack([exact_sigma(layer, shape) for _, layer, shape in g._linear_layers()])
    finally:
        cert.EXACT_CONV_MAX_ENTRIES = old
    assert (fft >= exact * (1 - 1e-9)).all()                 # the FFT bound is an upper bound


def test_power_iteration_of_a_dense_layer_matches_the_autograd_step():
    """The dense fast path (W^T W v by two products) is the step the convolution path takes through autograd."""
    from robustbook.certify import power_iteration

    torch.manual_seed(0)
    layer = nn.Linear(20, 30)
    v = torch.randn(1, 20)
    ref = v.clone()
    for _ in range(7):
        ref = ref.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(0.5 * nn.functional.linear(ref, layer.weight).pow(2).sum(), ref)
        ref = g / g.norm()
    out = power_iteration(layer, v, 7)
    assert not out.requires_grad
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-7)
    sigma = float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2))
    top = power_iteration(layer, v, 500)
    assert float(nn.functional.linear(top, layer.weight.detach()).norm()) == pytest.approx(sigma, rel=1e-5)


def _grad_norm(model, x, i, j):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (g,) = torch.autograd.grad((out[:, i] - out[:, j]).sum(), x)
    return g.flatten(1).norm(dim=1)


def test_lipschitz_bound_dominates_gradient_norms_found_by_search(digits):
    torch.manual_seed(0)
    g = train(TrainConfig(arch="2C2F", method="gloro", eps=0.3, epochs=3, eps_warmup=0.5), digits)
    K = g.sound_constants()
    gen = torch.Generator().manual_seed(1)
    for i, j in [(0, 1), (3, 5), (4, 9), (7, 2)]:
        x = torch.cat([digits.x_test[:100], torch.rand(100, 1, 8, 8, generator=gen)])
        best = _grad_norm(g, x, i, j)
        for _ in range(100):
            cand = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
            norm = _grad_norm(g, cand, i, j)
            better = norm > best
            x[better], best[better] = cand[better], norm[better]
        assert float(best.max()) <= float(K[i, j]) * (1 + 1e-5)
        assert float(best.max()) > 0.05 * float(K[i, j])


@pytest.fixture(scope="module")
def trained(digits):
    eps = 0.3
    models = {}
    for name, options in {"local": {}, "rtk": {"relaxation": "rtk", "K": 3},
                          "affinity": {"relaxation": "affinity", "groups": [[3, 5, 9], [3, 8, 9], [1, 2, 8], [0, 6]]}}.items():
        cfg = TrainConfig(arch="mlp", arch_options={"width": 128, "activation": "minmax"}, method="gloro", eps=1.1 * eps,
                          epochs=40, eps_warmup=0.5, loss_options={**options, "trades_lambda": 2.0})
        models[name] = train(cfg, digits)
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
        clean_gap = set_change(mask)(g(x), None)
    assert (gap < 0).all(), f"{int((gap >= 0).sum())} certificates broken"
    assert float(gap.max()) > float(clean_gap.max())      # the attack is not idle
    if name == "local":
        assert (cert.radius[cert.certified] > eps).all() and (cert.radius[~cert.certified] <= eps).all()
    assert attack_certificates(g, digits.x_test, eps, steps=5, restarts=1)["soundness_violations"] == 0


def test_on_one_net_the_guarantees_are_ordered(trained, digits):
    """By construction: a local certificate is an affinity one, and affinity with groups of at most K is RTK."""
    eps, models = trained
    groups = [[3, 5, 9], [3, 8, 9], [1, 2, 8], [0, 6]]
    for net in models.values():
        vra = {r: as_relaxation(net, r, **kw).certify(digits.x_test, eps=eps).vra(digits.y_test)
               for r, kw in (("local", {}), ("affinity", {"groups": groups}), ("rtk", {"K": 3}))}
        assert vra["local"] <= vra["affinity"] <= vra["rtk"]


def test_derived_groups_come_from_the_net_s_certificates(trained, digits):
    eps, models = trained
    derived = derive_groups(models["rtk"], digits.x_train, eps, count=4)
    assert len(derived) == 4 and all(len(g) >= 2 for g, _, _ in derived)
    assert derived[0][2] == "certified set" and derived[0][1] >= derived[-1][1] or derived[-1][2] == "top-2 pair"


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
    assert rb is not None


def test_co_certification_counts_the_classes_each_true_class_is_certified_with():
    from robustbook.certify import Certificate

    sets = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.bool)
    cert = Certificate(prediction=torch.tensor([0, 0, 1, 2]), certified=torch.tensor([True, True, True, False]),
                       certified_set=sets, set_size=sets.sum(1), radius=torch.zeros(4))
    m = cert.co_certification(torch.tensor([0, 0, 1, 2]), 3)
    assert m.tolist() == [[1.0, 0.5, 0.0],      # class 0: both certified with 0, one of them with 1 too
                          [0.0, 1.0, 0.0],
                          [0.0, 0.0, 0.0]]      # class 2's only point is not certified: nothing counts
    y = torch.tensor([0, 0, 1, 2])
    # the diagonal weighted by class sizes is the VRA
    sizes = torch.bincount(y, minlength=3).double()
    assert (m.diagonal() * sizes).sum().item() / len(y) == pytest.approx(cert.vra(y))


def test_the_soundness_attack_is_cached_per_net_and_relaxation(trained, digits, monkeypatch):
    """A rebuild reads the soundness check from the cache; another relaxation of the same weights is attacked anew."""
    import robustbook.certify as certify_module

    g = trained[1]["local"]
    x = digits.x_test[:100]
    first = attack_certificates(g, x, 0.3, steps=3, restarts=1)
    calls = []
    real = certify_module._attack_certificates
    monkeypatch.setattr(certify_module, "_attack_certificates", lambda *a: calls.append(a) or real(*a))
    assert attack_certificates(g, x, 0.3, steps=3, restarts=1) == first and not calls
    attack_certificates(as_relaxation(g, "rtk", K=2), x, 0.3, steps=3, restarts=1)
    assert len(calls) == 1


def test_the_co_certification_map_of_a_100_class_head_is_drawn_without_10000_numbers():
    import time

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustbook import plots

    for classes in (10, 100):
        fig, ax = plt.subplots()
        start = time.perf_counter()
        plots.co_certification(torch.eye(classes), [f"c{i}" for i in range(classes)], ax=ax)
        fig.canvas.draw()
        seconds = time.perf_counter() - start
        plt.close(fig)
        if classes <= plots.ANNOTATE_MAX_CLASSES:
            assert len(ax.texts) == classes * classes and len(ax.get_xticklabels()) == classes
        else:
            assert not ax.texts and not [t for t in ax.get_xticklabels() if t.get_text()]
            assert seconds < 10, f"{seconds:.1f} s to draw a {classes}-class map"


def test_as_gloro_wraps_only_networks_it_can_bound():
    """A GloRo net is itself; a plain CNN is wrapped (eval mode, same logits); a residual block or batch norm — as in
    the paper profile's RobustBench WideResNets — gets None, never a wrapper that would claim a certificate."""
    from robustbook.certify import as_gloro

    cnn = build_model("cnn", (1, 8, 8), 10, width=4)
    wrapped = as_gloro(cnn, 0.3)
    x = torch.rand(3, 1, 8, 8)
    assert isinstance(wrapped, GloroNet) and not wrapped.training and wrapped.eps == 0.3
    assert torch.equal(wrapped(x), cnn.eval()(x))
    assert as_gloro(wrapped, 0.5) is wrapped

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.head = nn.Conv2d(1, 1, 3, padding=1), nn.Linear(64, 10)

        def forward(self, x):
            return self.head((x + self.conv(x)).flatten(1))

    assert as_gloro(Residual(), 0.3) is None
    assert as_gloro(nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64), nn.Linear(64, 10)), 0.3) is None
    assert as_gloro(nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.ReLU()), 0.3) is None
    assert as_gloro(nn.Sequential(), 0.3) is None
