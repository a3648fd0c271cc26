"""Every training objective of the book, registered by name in :data:`LOSSES`.

A loss is called as ``loss(model, x, y, cfg, eps)`` on a batch and returns a scalar; ``eps`` is the
radius of the current epoch (it may ramp up). Some objectives train a wrapped network (GloRo's
bottom logit): their :class:`Loss` names the wrapper, which :mod:`robustbook.train` applies.

* ``standard`` — cross-entropy;
* ``pgd`` — Madry et al. (2018): cross-entropy on PGD adversarial inputs;
* ``trades`` — Zhang et al. (2019): CE(f(x), y) + beta KL(f(x) || f(x_adv));
* ``mma`` — Ding et al. (2020), max-margin adversarial training: cross-entropy at the closest
  boundary point found within ``d_max`` (an input-space margin, adapted per example);
* ``era`` — Merkli et al.: make the model non-robust where it is likely wrong, TRADES elsewhere;
* ``gloro`` — Leino et al. (2021): cross-entropy (or its TRADES form) over GloRo's augmented logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import pgd, pgd_training
from .certify import GloroNet
from .margins import bisect_to_boundary
from .runtime import eval_mode


@dataclass(frozen=True)
class Loss:
    fn: Callable[..., torch.Tensor]
    description: str
    adversarial: bool = False                 # needs eps > 0
    wrap: Callable[[nn.Module, object], nn.Module] | None = None


def _eval_mode_attack(model: nn.Module, run: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Attacks during training run in eval mode (no dropout noise in the attack), then training resumes."""
    with eval_mode(model):
        return run().detach()


def standard_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg, eps: float) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def _pgd(model, x, y, cfg, eps, **kw):
    """The inner maximisation of adversarial training: PGD's last iterate, as the reference code returns it."""
    return _eval_mode_attack(model, lambda: pgd_training(model, x, y, eps, cfg.norm, steps=cfg.attack_steps,
                                                         step_size=cfg.attack_step_size, **kw))


def pgd_loss(model, x, y, cfg, eps: float) -> torch.Tensor:
    """Madry et al. (2018): cross-entropy on PGD adversarial inputs."""
    return F.cross_entropy(model(_pgd(model, x, y, cfg, eps)), y)


def trades_kl(logits_adv: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits) || softmax(logits_adv)) per example."""
    return F.kl_div(F.log_softmax(logits_adv, 1), F.log_softmax(logits, 1), log_target=True, reduction="none").sum(1)


def trades_adversary(model: nn.Module, x: torch.Tensor, cfg, eps: float) -> torch.Tensor:
    """The TRADES inner maximisation: PGD on the KL to the clean prediction, from x plus small noise."""
    with torch.no_grad():
        clean = model(x).detach()
    start = x + 0.001 * torch.randn(x.shape, device=x.device)
    return _pgd(model, x, clean, cfg, eps, loss_fn=trades_kl, start=start)


def trades_loss(model, x, y, cfg, eps: float) -> torch.Tensor:
    """Zhang et al. (2019): CE(f(x), y) + beta * KL(f(x) || f(x_adv))."""
    x_adv = trades_adversary(model, x, cfg, eps) if eps > 0 else x
    logits, logits_adv = model(x), model(x_adv)
    return F.cross_entropy(logits, y) + cfg.beta * trades_kl(logits_adv, logits).mean()


def mma_loss(model, x, y, cfg, eps: float) -> torch.Tensor:
    """Max-margin adversarial training (Ding et al., 2020), with ``eps`` playing the role of d_max.

    For each correctly classified point, the closest adversarial point within d_max is searched as
    the paper's AN-PGD does: PGD inside the d_max ball, then bisection along the segment back to the
    first prediction flip. The cross-entropy there is the margin term: its gradient in the weights
    points along the gradient of the input margin (the paper's Proposition 2.1), so each point is
    pushed by its own margin. Points with no adversarial point within d_max are trained at the PGD
    point on the d_max sphere; misclassified points use the clean cross-entropy. As in the paper,
    the objective mixes 1/3 clean cross-entropy and 2/3 of this margin loss.
    """
    logits = model(x)
    clean = F.cross_entropy(logits, y, reduction="none")
    correct = logits.argmax(1).detach() == y

    def search():
        x_adv = pgd(model, x, y, eps, cfg.norm, steps=cfg.attack_steps, step_size=cfg.attack_step_size, seed=None)
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != y
        boundary = bisect_to_boundary(model, x, x_adv, y, steps=10)
        return torch.where(fooled.view(-1, *[1] * (x.dim() - 1)), boundary, x_adv)

    x_star = _eval_mode_attack(model, search)
    margin_term = F.cross_entropy(model(x_star), y, reduction="none")
    mma = torch.where(correct, margin_term, clean)
    return clean.mean() / 3 + 2 * mma.mean() / 3


def era_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg, eps: float) -> torch.Tensor:
    """L = mean[(1 - p_y(x)) CE(f(x_adv), y_adv) + era_beta (CE(f(x), y) + cfg.beta KL(f(x) || f(x_adv)))].

    As in the reference code (robust-abstain, loss/revadv.py and train/train_revadv.py): x_adv is
    PGD (``cfg.attack_steps`` steps, random start) against the model's own prediction; y_adv is
    the highest-scoring class on x_adv other than that prediction; p_y is the softmax probability
    of the true label at x, and gradients flow through it. The first term makes the model
    *non*-robust where it is likely wrong; the TRADES term, built on the same x_adv, keeps it
    accurate and robust where it is right.
    """
    with eval_mode(model):            # the reference code computes both logits in eval mode (with gradients)
        logits = model(x)
        pred = logits.argmax(1).detach()
        x_adv = pgd_training(model, x, pred, eps, cfg.norm, steps=cfg.attack_steps,
                             step_size=cfg.attack_step_size).detach()
        logits_adv = model(x_adv)
    p_wrong = 1 - F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    top2 = logits_adv.detach().topk(2, 1).indices
    y_adv = torch.where(top2[:, 0] == pred, top2[:, 1], top2[:, 0])
    push = p_wrong * F.cross_entropy(logits_adv, y_adv, reduction="none")
    trades = F.cross_entropy(logits, y, reduction="none") + cfg.beta * trades_kl(logits_adv, logits)
    return (push + cfg.loss_options.get("era_beta", 1.0) * trades).mean()


def gloro_loss(model: GloroNet, x: torch.Tensor, y: torch.Tensor, cfg, eps: float) -> torch.Tensor:
    """Cross-entropy over the augmented logits (label never bottom), or with ``trades_lambda`` > 0
    CE(y) - lambda * log(1 - p_bot) (the TRADES form of the GloRo paper)."""
    if not isinstance(model, GloroNet):
        raise TypeError("the gloro loss trains a GloroNet (train() wraps the network when method='gloro')")
    model.eps = eps
    aug = model.augmented(x)
    lam = cfg.loss_options.get("trades_lambda", 0.0)
    if lam:
        p_bot = F.softmax(aug, 1)[:, -1]
        return F.cross_entropy(aug[:, :-1], y) - lam * torch.log1p(-p_bot.clamp(max=1 - 1e-6)).mean()
    return F.cross_entropy(aug, y)


def as_gloro(model: nn.Module, cfg) -> GloroNet:
    """Wrap a freshly built network for GloRo training as ``cfg.loss_options`` says."""
    o = cfg.loss_options
    return GloroNet(model, cfg.eps, o.get("relaxation", "local"), o.get("K", 1), o.get("groups"),
                    o.get("power_iters", 5))


LOSSES: dict[str, Loss] = {
    "standard": Loss(standard_loss, "cross-entropy"),
    "pgd": Loss(pgd_loss, "PGD adversarial training (Madry et al., 2018)", adversarial=True),
    "trades": Loss(trades_loss, "TRADES (Zhang et al., 2019)", adversarial=True),
    "mma": Loss(mma_loss, "max-margin adversarial training (Ding et al., 2020)", adversarial=True),
    "era": Loss(era_loss, "ERA (Merkli et al.)", adversarial=True),
    "gloro": Loss(gloro_loss, "GloRo (Leino et al., 2021)", adversarial=True, wrap=as_gloro),
}


def get(name: str) -> Loss:
    from .validate import choice

    return LOSSES[choice("method", name, LOSSES)]
