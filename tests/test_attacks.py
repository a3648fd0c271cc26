"""Attacks as published: PGD keeps its best iterate, BIM uses Kurakin et al.'s step, DeepFool honours its
norm, CW searches its constant and moves pixels at 0, FAB leaves the global RNG alone, AutoAttack is cached."""
import pytest
import torch
from torch import nn

import robustbook as rb
from robustbook import attacks
from robustbook.attacks import (AUTOATTACK_SETTINGS, accuracy, attacked_points, autoattack, autoattack_setting, bim,
                                cw, deepfool, fgsm, lp_norm, pgd, pgd_training, predict_logits, robust_accuracy,
                                robust_flags)
from robustbook.validate import InvalidArgument
from robustbook.margins import fab
from robustbook.train import TrainConfig, train


@pytest.fixture(scope="module")
def mlp(digits):
    return train(TrainConfig(arch="mlp", arch_options={"width": 64}, epochs=15, seed=0), digits)


@pytest.mark.parametrize("norm, eps", [("Linf", 0.1), ("L2", 0.8)])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_attack_respects_ball_and_box_and_lowers_accuracy(mlp, digits, attack, norm, eps):
    x, y = digits.x_test[:200], digits.y_test[:200]
    x_adv = fgsm(mlp, x, y, eps, norm) if attack == "fgsm" else pgd(mlp, x, y, eps, norm, steps=20, restarts=2)
    assert float(lp_norm(x_adv - x, norm).max()) <= eps * (1 + 1e-5)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert accuracy(mlp, x_adv, y) < accuracy(mlp, x, y) - 0.1


class Oscillating(nn.Module):
    """Misclassifies only a thin band of inputs: a large-step PGD jumps over it and lands correct again."""

    def forward(self, x):
        s = x.flatten(1).mean(1, keepdim=True)
        wrong = torch.sigmoid(200 * (s - 0.52)) * torch.sigmoid(200 * (0.54 - s))
        return torch.cat([1 - 2 * wrong + 0.0 * s, 2 * wrong - 1 + 0.5 * (s - 0.5)], 1)


def test_pgd_keeps_the_best_iterate_not_the_last():
    """The last iterate of this PGD is correctly classified; an earlier one was not. Returning the last
    iterate (the old behaviour) would report the point robust."""
    x = torch.full((1, 1, 4, 4), 0.5)
    y = torch.tensor([0])
    model = Oscillating()
    out = pgd(model, x, y, eps=0.2, steps=6, step_size=0.03, random_start=False)
    assert int(model(out).argmax(1)) == 1
    last = x.clone()
    for _ in range(6):       # the plain loop, last iterate
        g = torch.autograd.functional.jacobian(lambda v: nn.functional.cross_entropy(model(v), y), last)
        last = (last + 0.03 * g.sign()).clamp(0.3, 0.7)
    assert int(model(last).argmax(1)) == 0


def test_training_pgd_returns_the_last_iterate():
    """``pgd_training`` (adversarial training, as the reference code does) returns the plain loop's last
    iterate: on the oscillating model it is correctly classified, the best iterate is not."""
    x = torch.full((1, 1, 4, 4), 0.5)
    y = torch.tensor([0])
    model = Oscillating()
    out = pgd_training(model, x, y, eps=0.2, steps=6, step_size=0.03, random_start=False)
    last = x.clone()
    for _ in range(6):
        g = torch.autograd.functional.jacobian(lambda v: nn.functional.cross_entropy(model(v), y), last)
        last = (last + 0.03 * g.sign()).clamp(0.3, 0.7)
    assert torch.allclose(out, last) and int(model(out).argmax(1)) == 0


def test_pgd_stops_attacking_fooled_points_without_changing_its_answer(mlp, digits):
    """Points already misclassified keep their first misclassified iterate, so attacking only the others
    must give what attacking every point at every step gives (the plain loop below, same random starts)."""
    import robustbook.attacks as A

    x, y = digits.x_test[:150], digits.y_test[:150]
    eps, steps = 0.1, 15
    fast = pgd(mlp, x, y, eps, steps=steps, restarts=2, seed=3)
    gen = torch.Generator().manual_seed(3)
    best, fooled = x.clone(), torch.zeros(len(x), dtype=torch.bool)
    best_loss = torch.full((len(x),), -float("inf"))
    for _restart in range(2):
        x_adv = A.random_start(x, eps, "Linf", gen)
        for step in range(steps + 1):
            with torch.no_grad():
                logits = mlp(x_adv)
            loss = nn.functional.cross_entropy(logits, y, reduction="none")
            wrong = logits.argmax(1) != y
            take = ~fooled & (wrong | (loss > best_loss))
            best[take], best_loss[take] = x_adv[take], loss[take]
            fooled |= wrong
            if step < steps:
                grad, _ = A._input_grad(mlp, x_adv, y, A._ce)
                x_adv = A.project(x_adv + A.ascent_step(grad, 2.5 * eps / steps, "Linf"), x, eps, "Linf")
        if bool(fooled.all()):
            break
    assert 0.2 < fooled.float().mean() < 1.0, "the test needs points that fall and points that do not"
    assert torch.equal(mlp(fast).argmax(1) != y, fooled)
    assert torch.allclose(best, fast, atol=1e-6)


def test_bim_uses_kurakin_s_step_and_iterations(mlp, digits, monkeypatch):
    import robustbook.attacks as atk

    seen = {}
    real = atk.pgd

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(atk, "pgd", spy)
    bim(mlp, digits.x_test[:8], digits.y_test[:8], 8 / 255)
    assert seen["step_size"] == pytest.approx(1 / 255)
    assert seen["steps"] == int(min(8 + 4, 1.25 * 8))          # min(eps*255 + 4, 1.25 eps*255) = 10
    assert seen["random_start"] is False and seen["restarts"] == 1


@pytest.mark.parametrize("norm", ["L2", "Linf"])
def test_deepfool_honours_its_norm(mlp, digits, norm):
    x = digits.x_test[:100]
    pred = predict_logits(mlp, x).argmax(1)
    x_adv = deepfool(mlp, x, pred, norm=norm)
    broken = predict_logits(mlp, x_adv).argmax(1) != pred
    assert broken.float().mean() >= 0.9
    ours = lp_norm(x_adv - x, norm)[broken]
    ref = fab(mlp, x, None, norm).distance[broken]
    assert float(torch.nanmedian(ours / ref)) < 1.6          # close to FAB's minimum in the same norm
    capped = deepfool(mlp, x, pred, eps=0.05, norm=norm)
    assert float(lp_norm(capped - x, norm).max()) <= 0.05 * (1 + 1e-5)


def test_deepfool_refuses_other_norms(mlp, digits):
    with pytest.raises(ValueError, match="valid choices: Linf, L2"):
        deepfool(mlp, digits.x_test[:2], digits.y_test[:2], norm="L1")


def test_cw_moves_pixels_that_start_at_zero():
    """A model whose only way to the other class is to raise pixels that are 0: CW's tanh change of variables
    pins them (its gradient is ~1e-6 there); ours must move them."""
    w = torch.zeros(2, 16)
    w[1, :8] = 1.0
    head = nn.Linear(16, 2)
    with torch.no_grad():
        head.weight.copy_(w)
        head.bias.copy_(torch.tensor([1.0, 0.0]))
    model = nn.Sequential(nn.Flatten(), head)
    x = torch.zeros(1, 1, 4, 4)
    x[..., 2:, :] = 1.0                               # the other pixels are bright: no help there
    y = torch.tensor([0])
    x_adv = cw(model, x, y, steps=200, lr=0.05, search_steps=5)
    assert int(model(x_adv).argmax(1)) == 1
    assert float(x_adv.flatten()[:8].max()) > 0.1


def test_cw_searches_its_constant(mlp, digits):
    """With a tiny starting constant, a fixed-c CW fails; the binary search raises c until it succeeds."""
    x, y = digits.x_test[:40], digits.y_test[:40]
    fixed = cw(mlp, x, y, c=1e-4, steps=50, search_steps=1)
    searched = cw(mlp, x, y, c=1e-4, steps=50, search_steps=6)
    assert accuracy(mlp, searched, y) < accuracy(mlp, fixed, y) - 0.3


def test_cw_handles_all_negative_logits(digits):
    """torchattacks 3.5.1 picks a masked 0 as the best other logit when every logit is negative."""
    base = train(TrainConfig(arch="mlp", arch_options={"width": 16}, epochs=10), digits)
    with torch.no_grad():
        base[-1].bias -= 1000.0                                   # every logit far below 0
    x, y = digits.x_test[:60], digits.y_test[:60]
    assert (predict_logits(base, x) < 0).all()
    assert accuracy(base, cw(base, x, y, None, steps=100), y) < accuracy(base, x, y) - 0.3


def test_fab_leaves_the_global_random_generator_alone(mlp, digits):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fab(mlp, digits.x_test[:10], n_iter=5, untargeted=2)
    assert torch.equal(torch.rand(3), expected)


def test_autoattack_leaves_the_global_random_generator_alone(mlp, digits):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    autoattack(mlp, digits.x_test[:10], digits.y_test[:10], 0.1, setting="smoke")
    assert torch.equal(torch.rand(3), expected)


def test_fab_reports_failures_counts_them_at_the_bound_and_never_zero(digits):
    """A constant model has no decision boundary: FAB fails; the distance is NaN and the margin the box's diameter."""

    class Constant(nn.Module):
        def forward(self, x):
            return torch.tensor([[2.0, 0.0, 0.0]]).repeat(len(x), 1) + 0 * x.flatten(1)[:, :3]

    r = fab(Constant(), digits.x_test[:5], n_iter=5)
    assert r.failures == 5 and not r.success.any()
    assert torch.isnan(r.distance).all()
    assert torch.equal(r.margin, torch.ones(5))                 # Linf diameter of [0, 1]^d
    assert fab(Constant(), digits.x_test[:2], None, "L2", n_iter=2).bound == pytest.approx(8.0)


def test_fab_points_are_real_adversarial_examples(mlp, digits):
    x = digits.x_test[:64]
    r = fab(mlp, x, targeted=3, n_iter=50)
    pred = predict_logits(mlp, x).argmax(1)
    assert r.success.float().mean() > 0.95
    assert (predict_logits(mlp, r.x_adv[r.success]).argmax(1) != pred[r.success]).all()
    assert torch.allclose(r.distance[r.success], lp_norm(r.x_adv - x, "Linf")[r.success])
    assert float(r.x_adv.min()) >= 0 and float(r.x_adv.max()) <= 1


def test_robust_accuracy_with_autoattack_is_cached_and_consistent(mlp, digits):
    x, y = digits.x_test[:100], digits.y_test[:100]
    first = robust_accuracy(mlp, x, y, 0.1, setting="smoke")
    flags = robust_flags(mlp, x, 0.1, setting="smoke")
    correct = predict_logits(mlp, x).argmax(1) == y
    assert first == pytest.approx((correct & flags).double().mean().item())
    assert robust_accuracy(mlp, x, y, 0.0) == pytest.approx(accuracy(mlp, x, y))
    assert first <= accuracy(mlp, x, y)
    stronger = robust_accuracy(mlp, x, y, 0.1, setting="cpu")
    assert stronger <= first + 1e-9                                   # APGD-T on top can only find more


def test_the_attack_behind_the_verdicts_runs_once_and_its_points_are_kept(mlp, digits, monkeypatch):
    """robust_flags and attacked_points read one run of the attack (named or given setting alike): an end-to-end
    attack judges the very points behind a model's headline verdicts without attacking again."""
    calls = []
    real = attacks.ATTACKS["autoattack"]
    monkeypatch.setitem(attacks.ATTACKS, "autoattack", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = digits.x_test[300:380]
    flags = robust_flags(mlp, x, 0.1, setting="smoke")
    points = attacked_points(mlp, x, 0.1, setting=AUTOATTACK_SETTINGS["smoke"])
    assert len(calls) == 1
    assert torch.equal(flags, predict_logits(mlp, points).argmax(1) == predict_logits(mlp, x).argmax(1))
    assert (~flags).any() and flags.any()
    assert float(lp_norm(points - x, "Linf").max()) <= 0.1 + 1e-6
    assert float(points.min()) >= 0 and float(points.max()) <= 1


def test_autoattack_iterations_are_a_size_and_nothing_else():
    assert autoattack_setting("cpu") is AUTOATTACK_SETTINGS["cpu"]
    short = autoattack_setting("standard", 2)
    full = AUTOATTACK_SETTINGS["standard"]
    assert (short.version, short.attacks, short.target_classes) == (full.version, full.attacks, full.target_classes)
    assert (short.n_iter, short.square_queries) == (2, 100)
    assert "2 iterations" in short.describe() and "iterations" not in full.describe()
    with pytest.raises(InvalidArgument, match="valid choices"):
        autoattack_setting("strong")
    with pytest.raises(InvalidArgument):
        autoattack_setting("cpu", -1)


def test_run_attacks_applies_each_attack_with_its_options(mlp, digits):
    from robustbook.attacks import run_attacks

    x, y = digits.x_test[:40], digits.y_test[:40]
    out = run_attacks(mlp, x, y, {"fgsm": {"eps": 0.05}, "pgd": {"eps": 0.1, "steps": 5}})
    assert list(out) == ["fgsm", "pgd"]
    assert torch.equal(out["fgsm"], fgsm(mlp, x, y, 0.05))
    assert float(lp_norm(out["pgd"] - x, "Linf").max()) <= 0.1 + 1e-6


def test_the_registry_entry_is_the_attack_itself(mlp, digits):
    """``rb.attack("pgd", ...)`` runs :func:`pgd` with the same options (same seed: the same points)."""
    x, y = digits.x_test[:20], digits.y_test[:20]
    assert torch.equal(rb.attack("pgd", mlp, x, y, 0.1, steps=5), pgd(mlp, x, y, 0.1, steps=5))
