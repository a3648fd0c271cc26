"""Chapter 5's pieces: corruptions, CIFAR-10.1 loading, the measures as defined, the findings as data."""
import math

import numpy as np
import pytest
import torch

import robustbook as rb
from robustbook import measures as ms
from robustbook.data import DataNotAvailable
from robustbook.shifts import CORRUPTIONS, SEVERITIES, corrupt, corrupt_rgb, load_cifar10_1, rgb_corruptions
from robustbook.stats import granulated_kendall


@pytest.fixture(scope="module")
def model(digits):
    return rb.train(rb.TrainConfig(arch="cnn", arch_options={"width": 8}, epochs=15), digits)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_are_seeded_in_the_box_and_grow_with_severity(digits, name):
    x = digits.x_test[:64]
    out = {s: corrupt(x, name, s, seed=1) for s in SEVERITIES}
    assert torch.equal(out[3], corrupt(x, name, 3, seed=1))
    for s, xs in out.items():
        assert xs.shape == x.shape and float(xs.min()) >= 0 and float(xs.max()) <= 1
    change = [float((out[s] - x).abs().mean()) for s in SEVERITIES]
    assert change[0] > 0 and change[-1] > change[0]


def test_corruption_arguments_are_checked(digits):
    with pytest.raises(ValueError, match="valid choices"):
        corrupt(digits.x_test[:2], "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(digits.x_test[:2], "contrast", 6)


def test_imagecorruptions_on_tiny_rgb_images():
    names = rgb_corruptions()
    assert "fog" not in names and "gaussian_noise" in names and len(names) >= 12
    x = torch.rand(2, 3, 32, 32)
    for name in ms.RGB_SHIFT_FAMILIES["noise"] + ("contrast", "pixelate"):
        out = corrupt_rgb(x, name, 3)
        assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
        assert not torch.allclose(out, x, atol=1 / 255)
    with pytest.raises(ValueError, match="at least 32x32"):
        corrupt_rgb(torch.rand(2, 1, 8, 8), "contrast", 1)


def test_cifar10_1_loader_reads_the_published_layout(tmp_path, no_network):
    with pytest.raises(DataNotAvailable, match="cifar10.1_v6_data.npy"):
        load_cifar10_1(tmp_path, timeout=2.0)
    with pytest.raises(DataNotAvailable, match="not on disk"):
        load_cifar10_1(tmp_path, download=False)
    folder = tmp_path / "cifar10.1"
    folder.mkdir()
    np.save(folder / "cifar10.1_v6_data.npy", np.zeros((4, 32, 32, 3), np.uint8))
    np.save(folder / "cifar10.1_v6_labels.npy", np.arange(4))
    x, y = load_cifar10_1(tmp_path)
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 1, 2, 3]


def test_norm_over_margin_is_the_log_of_a_ratio(model):
    """log(prod ||W||^2 / margin^2) = log prod ||W||^2 - 2 log |margin|. The old formula log(...) / margin^2 reverses the
    ranking of two models when the log is negative; this catches it."""
    out = ms.norms(model, (1, 8, 8), margin=2.0)
    assert out["spectral_over_margin"] == pytest.approx(out["log_spectral"] - 2 * math.log(2.0))
    small, large = ms.norms(model, (1, 8, 8), 0.5), ms.norms(model, (1, 8, 8), 4.0)
    assert small["spectral_over_margin"] > large["spectral_over_margin"]      # a smaller margin: a larger bound
    negative = ms.norms(model, (1, 8, 8), -0.5)
    assert negative["margin_nonpositive"] and negative["spectral_over_margin"] == pytest.approx(small["spectral_over_margin"])


def test_performance_metrics_on_request(model, digits):
    full = ms.performance(model, digits.x_test, digits.y_test, 10)
    assert set(full) == set(ms.PERFORMANCE)
    assert ms.performance(model, digits.x_test, digits.y_test, 10, ms.SHIFT_METRICS) == {k: full[k] for k in ms.SHIFT_METRICS}
    with pytest.raises(rb.validate.InvalidArgument, match="log_loss"):
        ms.performance(model, digits.x_test, digits.y_test, 10, ("logloss",))


def test_log_loss_equals_scikit_learns_including_clipped_and_certain_answers():
    import torch.nn.functional as F
    from sklearn.metrics import log_loss

    torch.manual_seed(0)
    logits = torch.randn(200, 10) * torch.tensor([1.0, 10.0, 100.0, 1000.0]).repeat(50)[:, None]   # up to p = 0 / 1
    y = torch.randint(0, 10, (200,))
    expected = log_loss(y.numpy(), F.softmax(logits.double(), 1).numpy(), labels=list(range(10)))
    assert ms.log_loss(logits, y) == pytest.approx(expected, rel=1e-12)
    certain = logits[3:4]                                                  # scale 1000: p = 1 in float64
    assert ms.log_loss(certain, certain.argmax(1)) == pytest.approx(0.0, abs=1e-15)


def test_path_norm_in_closed_form_and_through_a_spectral_norm():
    """Two layers: squared path norm = sum_k W2^2 relu(W1^2 1 + b1^2) + b2^2. A spectrally normalised copy counts the
    normalised weights (the plain net holding them gives the same number) and is left working afterwards."""
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    w1, b1, w2, b2 = (p.detach().double() for p in net.parameters())
    exact = ((w2 ** 2) @ torch.relu((w1 ** 2) @ torch.ones(6, dtype=torch.float64) + b1 ** 2) + b2 ** 2).sum().sqrt()
    assert ms.path_norm(net, (1, 2, 3)) == pytest.approx(float(exact), rel=1e-5)

    normed = nn.Sequential(nn.Flatten(), spectral_norm(nn.Linear(6, 5)), nn.ReLU(), spectral_norm(nn.Linear(5, 3)))
    normed.eval()
    plain = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        for i in (1, 3):
            plain[i].weight.copy_(normed[i].weight)
            plain[i].bias.copy_(normed[i].bias)
    x = torch.rand(4, 1, 2, 3)
    before = normed(x)
    assert ms.path_norm(normed, (1, 2, 3)) == pytest.approx(ms.path_norm(plain, (1, 2, 3)), rel=1e-5)
    assert ms.path_norm(normed, (1, 2, 3)) != pytest.approx(ms.path_norm(net, (1, 2, 3)), rel=1e-3)
    assert torch.equal(normed(x), before)


def test_magnitude_aware_noise_has_jiang_s_variance():
    """Variance sigma^2 w^2 + eps^2 (eps = 1e-3): not sigma (|w| + eps), whose variance differs for small w."""
    w = torch.tensor([0.0, 1e-3, 0.5, -2.0]).repeat(20000, 1).T.contiguous()
    gen = torch.Generator().manual_seed(0)
    noise = ms._noise(w, 0.1, True, 1, gen)[0]
    var = noise.var(dim=1)
    expected = 0.1 ** 2 * w[:, 0] ** 2 + 1e-6
    assert torch.allclose(var, expected, rtol=0.05)
    plain = ms._noise(w, 0.1, False, 1, gen)[0]
    assert torch.allclose(plain.var(dim=1), torch.full((4,), 0.01), rtol=0.05)


def test_sharpness_vectorised_and_loop_agree(model, digits):
    x, y = digits.x_train[:200], digits.y_train[:200]
    a = ms.sharpness(model, x, y, steps=6, vectorised=True)
    b = ms.sharpness(model, x, y, steps=6, vectorised=False)
    assert a == pytest.approx(b, rel=1e-6)
    assert ms.sharpness(model, x, y, magnitude_aware=True, steps=6) > 0


def test_sharpness_draws_its_weight_noise_once_for_every_bisection_step(model, digits, monkeypatch):
    """Common random numbers: one standard normal draw per parameter, rescaled at each step (drawing afresh at each
    of 15 steps cost more than the forward passes for a large layer)."""
    x, y = digits.x_train[:100], digits.y_train[:100]
    real, calls = torch.randn, []

    def counting(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get("size"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "randn", counting)
    first = ms.sharpness(model, x, y, steps=8, tol=0.0)          # tol 0: all 8 steps run
    assert len(calls) == len(list(model.parameters()))
    assert ms.sharpness(model, x, y, steps=8, tol=0.0) == first   # same seed, same draws, same answer


def test_findings_state_signs_and_are_judged_by_them():
    for f in ms.FINDINGS:
        assert f.sign in (-1, 1) and f.why
    assert ms.construction_linked("accuracy", "corruption/relative_robustness")
    assert not ms.construction_linked("margin", "corruption/relative_robustness")
    tau = {"accuracy": {"a/relative_robustness": 0.9, "a/uncertainty_robustness": 0.1},
           "margin": {"a/relative_robustness": 0.6, "a/uncertainty_robustness": -0.6}}
    found = ms.best_coverage(tau)
    best, share = found.measure, found.share
    assert best == "margin" and share == 1.0                 # accuracy's relative-robustness pair is left out


def test_granulated_kendall_on_a_full_grid():
    grid = rb.zoo.grid(["sgd", "adam"], [0, 1], [1, 2], [8], [0.0])
    measure = [p["depth"] + 0.1 * p["lr"] for p in grid]
    quantity = [p["depth"] for p in grid]
    out = granulated_kendall(grid, measure, quantity, rb.zoo.GRID_AXES)
    assert out["depth"] == pytest.approx(1.0)
    assert math.isnan(out["width"])                          # one value on that axis: undefined


def test_study_on_a_tiny_zoo(digits):
    zoo = [rb.zoo.load(rb.zoo.grid_name(p), digits, epochs=1, seed=0) for p in rb.zoo.grid(["adam"], [1], [1, 2], [4], [0.0])]
    attacks = {"fgsm": {"eps": 0.1}, "bim": {"eps": 0.1}, "deepfool": {"eps": 0.5, "steps": 3},
               "cw": {"eps": 0.5, "steps": 3, "search_steps": 1}}
    found = ms.study(zoo, digits, attacks, attack_points=20, sharpness_points=30)
    m, q, sec = found.measures, found.quantities, found.sharpness_seconds
    assert len(m) == len(q) == 2 and sec > 0
    assert {"accuracy", "spectral_over_margin", "sharpness_magnitude", "entropy"} <= set(m[0])
    assert {"noise/relative_robustness", "adversarial/accuracy_gap", "corruption/uncertainty_robustness"} <= set(q[0])
    tau = ms.correlations(m, q)
    assert all(-1 <= v <= 1 for row in tau.values() for v in row.values())
