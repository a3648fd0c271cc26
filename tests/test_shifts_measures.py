"""Chapter 5's pieces: the extra attacks, corruptions, CIFAR-10.1 loading, measures, granulated Kendall."""
import numpy as np
import pytest
import torch

import robustbook as rb
from robustbook import measures as ms
from robustbook.attacks import accuracy, bim, cw, deepfool, fab, lp_norm, predict_logits
from robustbook.data import Data, DataNotAvailable
from robustbook.shifts import CORRUPTIONS, SEVERITIES, corrupt, corrupt_rgb, load_cifar10_1, rgb_corruptions
from robustbook.stats import granulated_kendall


@pytest.fixture(scope="module")
def model(digits):
    return rb.train(rb.TrainConfig(arch="cnn", arch_options={"width": 8}, epochs=15), digits, progress=False)


@pytest.mark.parametrize("name, fn, norm, eps", [("bim", bim, "Linf", 0.1), ("deepfool", deepfool, "L2", 1.0),
                                                 ("cw", cw, "L2", 1.0)])
def test_attacks_lower_accuracy_within_budget_and_box(model, digits, name, fn, norm, eps):
    x, y = digits.x_test[:150], digits.y_test[:150]
    x_adv = fn(model, x, y, eps)
    assert float(lp_norm(x_adv - x, norm).max()) <= eps * (1 + 1e-5)
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert accuracy(model, x_adv, y) < accuracy(model, x, y) - 0.3


def test_deepfool_breaks_almost_every_point_and_is_near_minimal(model, digits):
    x = digits.x_test[:150]
    pred = predict_logits(model, x).argmax(1)
    x_adv = deepfool(model, x, pred)                               # unbounded: a minimum-norm attack
    broken = predict_logits(model, x_adv).argmax(1) != pred
    assert broken.float().mean() >= 0.95
    ours = lp_norm(x_adv - x, "L2")[broken]
    ref = fab(model, x, None, "L2", restarts=1, target_classes=3).distance[broken]
    assert float(torch.nanmedian(ours / ref)) < 1.5                  # DeepFool is close to FAB's minimum


def test_cw_handles_all_negative_logits(digits):
    """torchattacks 3.5.1 picks a masked 0 as the best other logit when every logit is negative."""
    base = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 16}, epochs=10), digits, progress=False)
    shifted = torch.nn.Sequential(base, torch.nn.Identity())
    with torch.no_grad():
        base[-1].bias -= 1000.0                                   # every logit far below 0
    x, y = digits.x_test[:60], digits.y_test[:60]
    assert (predict_logits(shifted, x) < 0).all()
    assert accuracy(shifted, cw(shifted, x, y, None, steps=100), y) < accuracy(shifted, x, y) - 0.3


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


def test_cifar10_1_loader(tmp_path):
    with pytest.raises(DataNotAvailable, match="cifar10.1_v6_data.npy"):
        load_cifar10_1(tmp_path)
    folder = tmp_path / "cifar10.1"
    folder.mkdir()
    np.save(folder / "cifar10.1_v6_data.npy", np.zeros((4, 32, 32, 3), np.uint8) + 255)
    np.save(folder / "cifar10.1_v6_labels.npy", np.arange(4))
    x, y = load_cifar10_1(tmp_path)
    assert x.shape == (4, 3, 32, 32) and float(x.max()) == 1.0 and y.tolist() == [0, 1, 2, 3]


def test_norms_path_norm_and_margin_on_a_known_network():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2, 2, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
        net[3].weight.copy_(torch.tensor([[1.0, 2.0]]))
    out = ms.norms(net, (1, 1, 2), margin=2.0)
    assert out["log_spectral"] == pytest.approx(2 * np.log(4) + 2 * np.log(np.sqrt(5)))
    assert out["log_frobenius"] == pytest.approx(np.log(25) + np.log(5))
    assert out["log_nuclear"] == pytest.approx(np.log(7) + np.log(np.sqrt(5)))
    # path norm: sqrt(sum over paths of prod of squared weights) = sqrt(9*1 + 16*4)
    assert np.exp(out["log_path_norm"]) == pytest.approx(np.sqrt(73))
    assert out["spectral_over_margin"] == pytest.approx(out["log_spectral"] / 4)


def test_sharpness_bisection_hits_the_target_drop(model, digits):
    x, y = digits.x_train[:300], digits.y_train[:300]
    s = ms.sharpness(model, x, y, seed=0)
    sigma = 1 / np.sqrt(s)
    params = {k: v.detach() for k, v in model.named_parameters()}
    base = (predict_logits(model, x).argmax(1) == y).double().mean().item()
    acc = ms._accuracy_under_noise(model, params, x, y, sigma, False, 20, torch.Generator().manual_seed(5))
    assert 0.05 <= base - acc <= 0.15
    assert ms.sharpness(model, x, y, magnitude_aware=True, seed=0) > 0


def test_granulated_kendall_on_a_grid():
    grid = ms.zoo_grid(("sgd", "adam"), (0, 1), (1, 2), (8,), (0.0,))
    depth_only = [c["depth"] for c in grid]
    out = granulated_kendall(grid, depth_only, depth_only, ms.AXES)
    assert out["depth"] == pytest.approx(1.0)
    assert np.isnan(out["width"])                                   # a single width: no pairs
    assert len(grid) == 8


def test_study_on_a_tiny_zoo(digits):
    grid = ms.zoo_grid(("adam",), (1,), (1, 2), (4,), (0.0,))
    models, seconds = ms.train_zoo(grid, digits, epochs=2, seed=0)
    attacks = {"fgsm": {"eps": 0.1}, "deepfool": {"eps": 0.5, "steps": 5}}
    measures, quantities, sharp = ms.study(models, digits, attacks, attack_points=30, sharpness_points=60, progress=False)
    assert len(measures) == 2 and sharp > 0 and seconds > 0
    assert {"corruption/accuracy_gap", "adversarial/relative_robustness", "noise/uncertainty_robustness"} <= set(quantities)
    tau = ms.correlations(measures, quantities)
    assert tau.shape == (measures.shape[1], quantities.shape[1])


def test_paper_profile_study_path_on_tiny_cifar_inputs():
    x = torch.rand(6, 3, 32, 32)
    y = torch.arange(6) % 10
    tiny = Data("cifar10", x, y, x, y, x, y, 10)
    grid = ms.zoo_grid(("adam",), (1,), (2,), (4,), (0.0,))
    models, _ = ms.train_zoo(grid, tiny, epochs=1, seed=0)
    _, quantities, _ = ms.study(models, tiny, {"fgsm": {"eps": 8 / 255}}, attack_points=6, sharpness_points=6,
                                progress=False, rgb=True, natural=(x, y))
    assert {"weather/accuracy_gap", "natural/relative_robustness"} <= set(quantities)


def test_check_findings_reads_the_tau_table():
    import pandas as pd

    measures_ = ["accuracy", "spectral_over_margin", "margin", "entropy", "sharpness"]
    quantities = ["corruption/relative_robustness", "corruption/uncertainty_robustness", "adversarial/relative_robustness"]
    tau = pd.DataFrame(0.1, index=measures_, columns=quantities)
    tau.loc["accuracy", "corruption/relative_robustness"] = 0.5
    tau.loc["spectral_over_margin", "corruption/relative_robustness"] = -0.4
    tau.loc["sharpness", "adversarial/relative_robustness"] = 0.2
    out = ms.check_findings(tau)
    assert out["performance and norm over margin moderately predict relative robustness"][0]
    assert not out["margin and entropy moderately correlate with uncertainty robustness"][0]
    assert not out["sharpness moderately predicts relative robustness to attacks"][0]
    assert out["no single measure predicts every kind of robustness well (|tau| >= 0.7 everywhere)"][0]
    tau.loc["margin"] = 0.9
    assert not ms.check_findings(tau)["no single measure predicts every kind of robustness well (|tau| >= 0.7 everywhere)"][0]
