import pytest
import torch

from robustbook.attacks import accuracy, fab, fgsm, lp_norm, pgd, predict_logits, robust_accuracy
from robustbook.train import TrainConfig, train


@pytest.fixture(scope="module")
def mlp(digits):
    return train(TrainConfig(arch="mlp", arch_options={"width": 64}, epochs=15, seed=0), digits, progress=False)


@pytest.mark.parametrize("norm, eps", [("Linf", 0.1), ("L2", 0.8)])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_attack_respects_ball_and_box_and_lowers_accuracy(mlp, digits, attack, norm, eps):
    x, y = digits.x_test[:200], digits.y_test[:200]
    x_adv = fgsm(mlp, x, y, eps, norm) if attack == "fgsm" else pgd(mlp, x, y, eps, norm, steps=20, restarts=2)
    assert float(lp_norm(x_adv - x, norm).max()) <= eps * (1 + 1e-5)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    clean, attacked = accuracy(mlp, x, y), accuracy(mlp, x_adv, y)
    assert attacked < clean - 0.1, (clean, attacked)


def test_pgd_is_at_least_as_strong_as_fgsm_and_deterministic(mlp, digits):
    x, y = digits.x_test, digits.y_test
    rob_fgsm = robust_accuracy(mlp, x, y, 0.1, "fgsm")
    rob_pgd = robust_accuracy(mlp, x, y, 0.1, "pgd", steps=30)
    assert rob_pgd <= rob_fgsm
    assert torch.equal(pgd(mlp, x[:50], y[:50], 0.1, seed=3), pgd(mlp, x[:50], y[:50], 0.1, seed=3))
    assert robust_accuracy(mlp, x, y, 0.0, "pgd") == pytest.approx(accuracy(mlp, x, y))


def test_fab_reports_failures_instead_of_zero(digits):
    """A constant model has no decision boundary: FAB must fail and say so, with NaN distances."""

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[2.0, 0.0, 0.0]]).repeat(len(x), 1) + 0 * x.flatten(1)[:, :3]

    r = fab(Constant(), digits.x_test[:5], n_iter=5)
    assert r.failures == 5 and not r.success.any()
    assert torch.isnan(r.distance).all()


def test_fab_points_are_real_adversarial_examples(mlp, digits):
    x = digits.x_test[:64]
    r = fab(mlp, x, restarts=2, target_classes=3, n_iter=50)
    pred = predict_logits(mlp, x).argmax(1)
    assert r.success.float().mean() > 0.95
    assert (predict_logits(mlp, r.x_adv[r.success]).argmax(1) != pred[r.success]).all()
    assert torch.allclose(r.distance[r.success], lp_norm(r.x_adv - x, "Linf")[r.success])
    assert float(r.x_adv.min()) >= 0 and float(r.x_adv.max()) <= 1
    # the PGD robust accuracy can only be explained by margins: no point with FAB distance <= eps survives PGD
    small = r.success & (r.distance <= 0.05)
    assert (r.distance[r.success] > 0).all()
    assert small.any()


def test_run_attacks_applies_each_attack_with_its_options(mlp, digits):
    from robustbook.attacks import run_attacks

    x, y = digits.x_test[:40], digits.y_test[:40]
    out = run_attacks(mlp, x, y, {"fgsm": {"eps": 0.05}, "pgd": {"eps": 0.1, "steps": 5}})
    assert list(out) == ["fgsm", "pgd"]
    assert torch.equal(out["fgsm"], fgsm(mlp, x, y, 0.05))
    assert float(lp_norm(out["pgd"] - x, "Linf").max()) <= 0.1 + 1e-6
