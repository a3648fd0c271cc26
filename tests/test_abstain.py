import pytest
import torch

import robustbook as rb
from robustbook import abstain
from robustbook.attacks import predict_logits


def test_robustness_metrics_partition_the_points():
    correct = torch.tensor([1, 1, 1, 0, 0, 1, 0, 1], dtype=torch.bool)
    robust = torch.tensor([1, 1, 0, 1, 0, 0, 0, 1], dtype=torch.bool)
    m = abstain.robustness_metrics(correct, robust)
    assert m["r_rob_acc"] == 3 / 8 and m["r_rob_inacc"] == 1 / 8
    assert m["nonrobust_acc"] == 2 / 8 and m["nonrobust_inacc"] == 2 / 8
    assert m["r_rob_acc"] + m["r_rob_inacc"] + m["nonrobust_acc"] + m["nonrobust_inacc"] == pytest.approx(1)
    assert m["abstain_robust_accuracy"] == pytest.approx(3 / 4) and m["r_nat"] == 5 / 8


def test_compositional_formula():
    s = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    out = abstain.compositional(s, robust_correct=torch.tensor([1, 0, 0, 0]).bool(), robust_robust=torch.tensor([1, 1, 1, 1]).bool(),
                                core_correct=torch.tensor([0, 0, 1, 1]).bool(), core_robust=torch.tensor([0, 0, 1, 0]).bool())
    assert out["natural_accuracy"] == 0.75          # robust model right on 1 of its 2, core on both of its 2
    assert out["robust_accuracy"] == 0.5            # point 0 (robust model) and point 2 (core)
    assert out["r_rob_inacc"] == 0.25 and out["selected"] == 0.5


def test_empirical_robustness_is_judged_against_the_own_prediction(digits):
    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=10), digits, progress=False)
    x = digits.x_test[:100]
    robust_small = abstain.empirically_robust(model, x, 0.001, steps=5)
    robust_big = abstain.empirically_robust(model, x, 0.5, steps=20)
    assert robust_small.float().mean() > 0.95 and robust_big.float().mean() < 0.05
    # a wrong prediction that no attack changes is robust (and so counts as robust inaccuracy)
    wrong = predict_logits(model, x).argmax(1) != digits.y_test[:100]
    assert (robust_small & wrong).any() or not wrong.any()


def test_selectors_registry_and_score_selector(digits):
    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=3), digits, progress=False)
    x = digits.x_test[:50]
    assert abstain.select("score", model, x, 0.1, threshold=-1.0).all()
    assert not abstain.select("score", model, x, 0.1, threshold=1e9).any()
    with pytest.raises(ValueError, match="valid choices: empirical, certified, score"):
        abstain.select("oracle", model, x, 0.1)


def test_certified_selector_uses_the_gloro_certificate(digits):
    net = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32, "activation": "minmax"}, method="gloro",
                                  eps=0.3, epochs=5, eps_warmup=0.5), digits, progress=False)
    x = digits.x_test[:80]
    sel = abstain.select("certified", net, x, 0.3)
    assert torch.equal(sel, net.certify(x, eps=0.3).certified)
    assert sel.any()


def test_era_makes_wrong_points_non_robust_on_the_synthetic_example():
    toy = rb.load_dataset("blobs", means=[(0.25, 0.25), (0.75, 0.75), (0.55, 0.80)],
                          stds=[(0.05, 0.05), (0.05, 0.05), (0.0167, 0.025)], counts=[485, 499, 16], seed=0)
    sgd = dict(arch="mlp", arch_options={"width": 64, "depth": 3}, epochs=20, batch_size=10, optimizer="sgd",
               lr=0.03, momentum=0.9, weight_decay=1e-4, schedule="step", seed=0)
    adv = dict(eps=0.1, attack_steps=10, attack_step_size=0.025)
    x, y = toy.x_train, toy.y_train
    out = {}
    for name, extra in {"trades": dict(method="trades"), "era": dict(method="era", loss_options={"era_beta": 0.2})}.items():
        model = rb.train(rb.TrainConfig(**sgd, **adv, **extra), toy, progress=False)
        out[name] = abstain.evaluate(model, x, y, 0.1, steps=50, restarts=1)
    assert out["era"]["r_rob_inacc"] < out["trades"]["r_rob_inacc"]
    assert out["era"]["r_rob_acc"] >= out["trades"]["r_rob_acc"] - 0.02


def test_paper_profile_path_fine_tunes_a_local_robustbench_checkpoint():
    """RobustBench model -> ERA fine-tuning -> selector -> compositional metrics, on 4 random CIFAR-sized images."""
    from robustbook.chapters import resolve
    from robustbook.data import Data
    from robustbook.models import robustbench_architecture, robustbench_checkpoint
    from robustbook.runtime import cache_dir

    assert resolve("04_avoid_robust_inaccuracy", "paper")["robust_model"] == "Gowal2020Uncovering_28_10_extra"
    torch.manual_seed(0)
    path = robustbench_checkpoint("Standard", "cifar10", "Linf", cache_dir() / "robustbench")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        torch.save(robustbench_architecture("Standard").state_dict(), path)
    x = torch.rand(4, 3, 32, 32)
    y = torch.arange(4)
    tiny = Data("cifar10", x, y, x, y, x, y, 10)
    recipes = abstain.digits_recipes(1 / 255, 1, 4, 1, 0)
    core = abstain.load_model("Standard", tiny, recipes)
    era = rb.train(abstain.era_config(2 / 255, 1, 1e-3, 1.0, 1, 0), tiny, init=core, progress=False)
    sel = abstain.select("empirical", era, x, 2 / 255, steps=1, restarts=1)
    correct = predict_logits(era, x).argmax(1) == y
    robust = abstain.empirically_robust(era, x, 1 / 255, steps=1, restarts=1)
    out = abstain.compositional(sel, correct, robust, correct, robust)
    assert set(out) == {"natural_accuracy", "robust_accuracy", "r_rob_inacc", "selected"}


def test_indicators_match_evaluate(digits):
    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=5), digits, progress=False)
    x, y = digits.x_test[:80], digits.y_test[:80]
    correct, robust = abstain.indicators(model, x, y, 0.1, steps=5)
    assert torch.equal(correct, predict_logits(model, x).argmax(1) == y)
    assert abstain.evaluate(model, x, y, 0.1, steps=5) == abstain.robustness_metrics(correct, robust)
