"""Avoiding robust inaccuracy (Merkli et al.): ERA training, robustness as an abstain mechanism,
and the compositional model.

Robustness here is judged against the model's OWN prediction: x is robust when no input in the
ball changes the prediction, whether or not the prediction is right.

* :func:`robustness_metrics` — R_nat, R_rob^acc, R_rob^inacc, the non-robust shares, coverage;
* selectors (:data:`SELECTORS`) — ``empirical`` (PGD with restarts against the predicted label),
  ``certified`` (a GloRo certificate), ``score`` (a logit-margin threshold): each returns a
  boolean mask "select this point for the robust model";
* :func:`era_loss` — registered in :data:`robustbook.train.LOSSES` as ``"era"``;
* :func:`compositional` — natural and robust accuracy of selector + robust model + core model.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import pgd, predict_logits


# --------------------------------------------------------------------------- robustness w.r.t. the own prediction
def empirically_robust(model: nn.Module, x: torch.Tensor, eps: float, norm: str = "Linf", steps: int = 50,
                       restarts: int = 2, seed: int = 0, batch_size: int = 2048) -> torch.Tensor:
    """True where PGD (with restarts) against the model's own prediction fails to change it."""
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        pred = predict_logits(model, xb).argmax(1)
        x_adv = pgd(model, xb, pred, eps, norm, steps=steps, restarts=restarts, seed=seed)
        out.append(predict_logits(model, x_adv).argmax(1) == pred)
    return torch.cat(out)


def robustness_metrics(correct: torch.Tensor, robust: torch.Tensor) -> dict:
    """The paper's metrics from per-point correctness and robustness masks."""
    c, r = correct.double(), robust.double()
    acc = (c * r).mean().item()
    inacc = ((1 - c) * r).mean().item()
    return {
        "r_nat": c.mean().item(),
        "r_rob_acc": acc,
        "r_rob_inacc": inacc,
        "nonrobust_acc": (c * (1 - r)).mean().item(),
        "nonrobust_inacc": ((1 - c) * (1 - r)).mean().item(),
        "robust_coverage": acc + inacc,
        "abstain_robust_accuracy": acc / (acc + inacc) if acc + inacc > 0 else float("nan"),
    }


def indicators(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, **attack) -> tuple[torch.Tensor, torch.Tensor]:
    """Per point: is the prediction correct, and is it (empirically) robust at ``eps``?"""
    return predict_logits(model, x).argmax(1) == y, empirically_robust(model, x, eps, **attack)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, **attack) -> dict:
    """:func:`robustness_metrics` of a model, robustness measured empirically at ``eps``."""
    return robustness_metrics(*indicators(model, x, y, eps, **attack))


# --------------------------------------------------------------------------- selectors
def empirical_selector(model, x, eps, norm="Linf", steps=50, restarts=2, **_):
    return empirically_robust(model, x, eps, norm, steps, restarts)


def certified_selector(model, x, eps, **_):
    """The GloRo certificate (``model`` must be a :class:`robustbook.certify.GloroNet`)."""
    return model.certify(x, eps=eps).certified


def score_selector(model, x, eps=None, threshold: float = 0.0, **_):
    """Select where the logit margin exceeds ``threshold`` (one forward pass)."""
    from .margins import logit_margin

    return logit_margin(predict_logits(model, x)) > threshold


SELECTORS: dict[str, Callable[..., torch.Tensor]] = {
    "empirical": empirical_selector,
    "certified": certified_selector,
    "score": score_selector,
}


def select(name: str, model: nn.Module, x: torch.Tensor, eps: float, **options) -> torch.Tensor:
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r}; valid choices: {', '.join(SELECTORS)}")
    return SELECTORS[name](model, x, eps, **options)


# --------------------------------------------------------------------------- the compositional model
def compositional(selected: torch.Tensor, robust_correct: torch.Tensor, robust_robust: torch.Tensor,
                  core_correct: torch.Tensor, core_robust: torch.Tensor) -> dict:
    """Natural and robust accuracy of "robust model where selected, core model elsewhere".

    natural = mean(S acc_robust + (1 - S) acc_core)
    robust  = mean(S acc_robust rob_robust + (1 - S) acc_core rob_core)
    (robustness of each model at the evaluation eps; the selector is checked at its own,
    larger eps so that it keeps selecting every point of the ball).
    """
    s = selected.double()
    ra, rr = robust_correct.double(), robust_robust.double()
    ca, cr = core_correct.double(), core_robust.double()
    natural = (s * ra + (1 - s) * ca).mean().item()
    robust = (s * ra * rr + (1 - s) * ca * cr).mean().item()
    inacc = (s * (1 - ra) * rr + (1 - s) * (1 - ca) * cr).mean().item()
    return {"natural_accuracy": natural, "robust_accuracy": robust, "r_rob_inacc": inacc,
            "selected": s.mean().item()}


# --------------------------------------------------------------------------- ERA training
def era_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg, eps: float) -> torch.Tensor:
    """L = mean[(1 - p_y(x)) CE(f(x_adv), y_adv) + era_beta (CE(f(x), y) + cfg.beta KL(f(x) || f(x_adv)))].

    As in the reference code (robust-abstain, loss/revadv.py and train/train_revadv.py): x_adv is
    PGD (``cfg.attack_steps`` steps, random start) against the model's own prediction; y_adv is
    the highest-scoring class on x_adv other than that prediction; p_y is the softmax probability
    of the true label at x, and gradients flow through it.  The first term makes the model
    *non*-robust where it is likely wrong; the TRADES term, built on the same x_adv, keeps it
    accurate and robust where it is right.
    """
    from .train import trades_kl

    was = model.training
    model.eval()
    logits = model(x)
    pred = logits.argmax(1).detach()
    x_adv = pgd(model, x, pred, eps, cfg.norm, steps=cfg.attack_steps, step_size=cfg.attack_step_size, seed=None)
    logits_adv = model(x_adv)
    model.train(was)
    p_wrong = 1 - F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    top2 = logits_adv.detach().topk(2, 1).indices
    y_adv = torch.where(top2[:, 0] == pred, top2[:, 1], top2[:, 0])
    push = p_wrong * F.cross_entropy(logits_adv, y_adv, reduction="none")
    trades = F.cross_entropy(logits, y, reduction="none") + cfg.beta * trades_kl(logits_adv, logits)
    return (push + cfg.loss_options.get("era_beta", 1.0) * trades).mean()


# --------------------------------------------------------------------------- the chapter's models
def digits_recipes(eps: float, epochs: int, width: int, attack_steps: int, seed: int) -> dict:
    """Core (standard) and robust (TRADES) recipes, shared with chapters 1 and 2 where they coincide."""
    from .train import TrainConfig

    common = dict(arch="cnn", arch_options={"width": width}, epochs=epochs, lr=1e-3, seed=seed)
    return {"standard": TrainConfig(**common),
            "trades": TrainConfig(**common, method="trades", eps=eps, attack_steps=attack_steps),
            "pgd": TrainConfig(**common, method="pgd", eps=eps, attack_steps=attack_steps)}


def load_model(name: str, data, recipes: dict, threat_model: str = "Linf") -> nn.Module:
    """A digits recipe by name (trained or cached), otherwise a RobustBench model."""
    from .models import load_robustbench
    from .train import train

    if name in recipes:
        return train(recipes[name], data)
    return load_robustbench(name, data.name, threat_model)


def era_config(eps: float, epochs: int, lr: float, era_beta: float, attack_steps: int, seed: int,
               trades_beta: float = 6.0):
    """Fine-tuning with ERA: SGD (momentum 0.9, wd 1e-4) as in the paper, the epoch with the best
    validation accuracy kept (the test split is never used for selection)."""
    from .train import TrainConfig

    return TrainConfig(arch="finetune", method="era", eps=eps, attack_steps=attack_steps,
                       attack_step_size=0.25 * eps, beta=trades_beta, epochs=epochs, lr=lr, optimizer="sgd",
                       momentum=0.9, weight_decay=1e-4, select="val_accuracy", seed=seed,
                       loss_options={"era_beta": era_beta})
