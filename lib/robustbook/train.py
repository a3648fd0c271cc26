"""Training: standard, PGD adversarial training and TRADES, seeded and cached.

``train(config, data)`` returns a trained model.  The checkpoint is cached under
``cache_dir()/models/<arch>-<method>-<hash>.pt`` where the hash covers every training
parameter and a fingerprint of the training data; a second call with the same
parameters loads it (``weights_only=True``) instead of training again.  Losses are a
registry (:data:`LOSSES`), so later chapters add theirs (GloRo, ERA) without if-chains.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .attacks import accuracy, check_norm, pgd
from .data import Data
from .models import build_model
from .runtime import cache_dir, load_torch, save_json, save_torch, seed_everything, stable_hash, tensor_fingerprint


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (and therefore its cache key)."""

    arch: str = "mlp"
    arch_options: dict = field(default_factory=dict)
    method: str = "standard"           # a key of LOSSES
    eps: float = 0.0                   # attack radius of adversarial methods
    norm: str = "Linf"
    attack_steps: int = 10
    attack_step_size: float | None = None   # default 2.5 * eps / steps
    beta: float = 6.0                  # TRADES weight
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"            # a key of OPTIMIZERS
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"         # a key of SCHEDULES
    eps_warmup: float = 0.0            # fraction of epochs over which eps ramps up linearly
    select: str = "last"               # "last" or "val_accuracy" (best epoch on the validation split)
    seed: int = 0
    loss_options: dict = field(default_factory=dict)   # extra options of the chosen loss

    def key(self, data: Data) -> str:
        fingerprint = tensor_fingerprint(data.x_train, data.y_train)
        return f"{self.arch}-{self.method}-{stable_hash([asdict(self), data.name, fingerprint])}"


# --------------------------------------------------------------------------- losses
def standard_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, eps: float) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def _attack(model: nn.Module, x, y, cfg: TrainConfig, eps: float, **kw) -> torch.Tensor:
    was_training = model.training
    model.eval()
    x_adv = pgd(model, x, y, eps, cfg.norm, steps=cfg.attack_steps, step_size=cfg.attack_step_size, seed=None, **kw)
    model.train(was_training)
    return x_adv


def pgd_loss(model, x, y, cfg: TrainConfig, eps: float) -> torch.Tensor:
    """Madry et al. (2018): cross-entropy on PGD adversarial inputs."""
    return F.cross_entropy(model(_attack(model, x, y, cfg, eps)), y)


def trades_kl(logits_adv: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits) || softmax(logits_adv)) per example."""
    return F.kl_div(F.log_softmax(logits_adv, 1), F.log_softmax(logits, 1), log_target=True, reduction="none").sum(1)


def trades_adversary(model: nn.Module, x: torch.Tensor, cfg: TrainConfig, eps: float) -> torch.Tensor:
    """The TRADES inner maximisation: PGD on the KL to the clean prediction."""
    with torch.no_grad():
        clean = model(x).detach()
    was_training = model.training
    model.eval()
    x_adv = pgd(model, x, clean, eps, cfg.norm, steps=cfg.attack_steps, step_size=cfg.attack_step_size,
                loss_fn=trades_kl, seed=None, start=x + 0.001 * torch.randn_like(x))
    model.train(was_training)
    return x_adv


def trades_loss(model, x, y, cfg: TrainConfig, eps: float) -> torch.Tensor:
    """Zhang et al. (2019): CE(f(x), y) + beta * KL(f(x) || f(x_adv))."""
    x_adv = trades_adversary(model, x, cfg, eps) if eps > 0 else x
    logits, logits_adv = model(x), model(x_adv)
    return F.cross_entropy(logits, y) + cfg.beta * trades_kl(logits_adv, logits).mean()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "standard": standard_loss,
    "pgd": pgd_loss,
    "trades": trades_loss,
}

# Methods that train a wrapped network (e.g. GloRo's bottom logit); filled in at the end of this module.
WRAPPERS: dict[str, Callable[[nn.Module, "TrainConfig"], nn.Module]] = {}

OPTIMIZERS = {
    "adam": lambda p, c: torch.optim.Adam(p, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
}

SCHEDULES = {
    "constant": lambda opt, c: torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0),
    "step": lambda opt, c: torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.75 * c.epochs)], 0.1),
    "cosine": lambda opt, c: torch.optim.lr_scheduler.CosineAnnealingLR(opt, c.epochs),
}


def validate_config(cfg: TrainConfig) -> TrainConfig:
    for name, registry in (("method", LOSSES), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        if getattr(cfg, name) not in registry:
            raise ValueError(f"unknown {name} {getattr(cfg, name)!r}; valid choices: {', '.join(registry)}")
    check_norm(cfg.norm)
    if cfg.select not in ("last", "val_accuracy"):
        raise ValueError(f"unknown select {cfg.select!r}; valid choices: last, val_accuracy")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.eps < 0:
        raise ValueError("epochs and batch_size must be >= 1, lr > 0 and eps >= 0")
    return cfg


def _eps_at(cfg: TrainConfig, epoch: int) -> float:
    """eps of an epoch: ramps linearly from 1% to 100% of cfg.eps over the warm-up fraction of epochs."""
    if cfg.eps_warmup <= 0:
        return cfg.eps
    ramp = max(1, round(cfg.eps_warmup * cfg.epochs))
    return cfg.eps * (0.01 + 0.99 * min(1.0, epoch / max(1, ramp - 1)))


def fit(model: nn.Module, data: Data, cfg: TrainConfig, progress: bool = True) -> tuple[nn.Module, list[dict]]:
    """Train ``model`` in place with the loss ``cfg.method``; returns it and the epoch history."""
    validate_config(cfg)
    seed_everything(cfg.seed)
    loss_fn = LOSSES[cfg.method]
    opt = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)
    sched = SCHEDULES[cfg.schedule](opt, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = data.x_train, data.y_train
    history, best_state, best_val = [], None, -1.0
    bar = tqdm(range(cfg.epochs), desc=f"{cfg.arch}/{cfg.method}", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        eps = _eps_at(cfg, epoch)
        perm = torch.randperm(len(y), generator=gen)
        total = 0.0
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = loss_fn(model, x[idx], y[idx], cfg, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        model.eval()
        val_acc = accuracy(model, data.x_val, data.y_val) if len(data.y_val) else float("nan")
        history.append({"epoch": epoch + 1, "loss": total / len(y), "val_accuracy": val_acc, "eps": eps})
        bar.set_postfix(loss=f"{total / len(y):.3f}", val=f"{val_acc:.3f}")
        if cfg.select == "val_accuracy" and val_acc > best_val:
            best_val, best_state = val_acc, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


def checkpoint_path(cfg: TrainConfig, data: Data) -> Path:
    return cache_dir() / "models" / f"{cfg.key(data)}.pt"


def train(cfg: TrainConfig, data: Data, init: nn.Module | None = None, cache: bool = True,
          progress: bool = True) -> nn.Module:
    """A model trained with ``cfg`` on ``data``, loaded from the cache when it was trained before.

    ``init`` fine-tunes a copy of an existing model instead of a fresh ``cfg.arch``
    network (its weights then join the cache key).
    """
    validate_config(cfg)
    if init is not None:
        base = stable_hash({k: tensor_fingerprint(v) for k, v in init.state_dict().items()})
        cfg = replace(cfg, loss_options={**cfg.loss_options, "init": base})
    path = checkpoint_path(cfg, data)
    seed_everything(cfg.seed)
    model = copy.deepcopy(init) if init is not None else build_model(cfg.arch, data.input_shape, data.num_classes, **cfg.arch_options)
    if cfg.method in WRAPPERS and init is None:
        model = WRAPPERS[cfg.method](model, cfg)
    if hasattr(model, "trace"):
        model.trace(data.input_shape)
    if cache and path.is_file():
        model.load_state_dict(load_torch(path))
        return model.eval()
    model, history = fit(model, data, cfg, progress=progress)
    if cache:
        save_torch(model.state_dict(), path)
        save_json({"config": asdict(cfg), "dataset": data.name, "history": history}, path.with_suffix(".json"))
    return model


def _register_chapter_losses() -> None:
    from .abstain import era_loss
    from .certify import as_gloro, gloro_loss

    LOSSES["gloro"] = gloro_loss
    WRAPPERS["gloro"] = as_gloro
    LOSSES["era"] = era_loss


_register_chapter_losses()
