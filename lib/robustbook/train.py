"""Training, seeded, on the chosen device, and cached.

``train(config, data)`` returns a trained model. The checkpoint is a verified cache entry
``cache_dir()/models/<arch>-<method>-<key>.pt`` whose key covers every training parameter, a
fingerprint of the training data and the code of the modules that train (this one, the losses,
the architectures, the attacks used inside training); a second call with the same parameters
loads it (``weights_only=True``) instead of training again. The objectives are the registry
:data:`robustbook.losses.LOSSES`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from . import losses
from . import validate as check
from .attacks import NORMS, accuracy
from .data import Data
from .models import ARCHITECTURES, build_model
from .runtime import (cache_dir, cache_load, cache_save, code_hash, device, model_fingerprint, progress, save_json,
                      seed_everything, stable_hash, tensor_fingerprint, timed)

TRAINING_CODE = ("train", "losses", "models", "attacks", "certify", "data")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (and therefore its cache key)."""

    arch: str = "mlp"
    arch_options: dict = field(default_factory=dict)
    method: str = "standard"           # a key of robustbook.losses.LOSSES
    eps: float = 0.0                   # attack radius of adversarial methods (d_max for MMA)
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
        return f"{self.arch}-{self.method}-{stable_hash([asdict(self), data.name, fingerprint, code_hash(*TRAINING_CODE)])}"


OPTIMIZERS = {
    "adam": lambda p, c: torch.optim.Adam(p, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
}

SCHEDULES = {
    "constant": lambda opt, c: torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0),
    "step": lambda opt, c: torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.75 * c.epochs)], 0.1),
    "cosine": lambda opt, c: torch.optim.lr_scheduler.CosineAnnealingLR(opt, c.epochs),
}


def validate_config(cfg: TrainConfig, fine_tune: bool = False) -> TrainConfig:
    """Refuse a config before any work: unknown names, non-finite or out-of-range numbers."""
    if not fine_tune:
        check.choice("arch", cfg.arch, ARCHITECTURES)
    loss = losses.get(cfg.method)
    check.choice("optimizer", cfg.optimizer, OPTIMIZERS)
    check.choice("schedule", cfg.schedule, SCHEDULES)
    check.choice("norm", cfg.norm, NORMS)
    check.choice("select", cfg.select, ("last", "val_accuracy"))
    check.number("epochs", cfg.epochs, low=1, high=100_000, integer=True)
    check.number("batch_size", cfg.batch_size, low=1, integer=True)
    check.number("attack_steps", cfg.attack_steps, low=1, high=10_000, integer=True)
    check.number("seed", cfg.seed, low=0, high=2**63 - 1, integer=True)
    check.number("lr", cfg.lr, low=0.0, low_open=True, high=10.0)
    for name in ("momentum", "eps_warmup"):
        check.number(name, getattr(cfg, name), low=0.0, high=1.0)
    check.number("weight_decay", cfg.weight_decay, low=0.0)
    check.number("beta", cfg.beta, low=0.0)
    check.radius("eps", cfg.eps, allow_zero=not loss.adversarial)
    if cfg.attack_step_size is not None:
        check.number("attack_step_size", cfg.attack_step_size, low=0.0, low_open=True)
    for k, v in cfg.loss_options.items():
        if isinstance(v, float):
            check.number(f"loss_options[{k!r}]", v)
    return cfg


def _eps_at(cfg: TrainConfig, epoch: int) -> float:
    """eps of an epoch: ramps linearly from 1% to 100% of cfg.eps over the warm-up fraction of epochs."""
    if cfg.eps_warmup <= 0:
        return cfg.eps
    ramp = max(1, round(cfg.eps_warmup * cfg.epochs))
    return cfg.eps * (0.01 + 0.99 * min(1.0, epoch / max(1, ramp - 1)))


def fit(model: nn.Module, data: Data, cfg: TrainConfig) -> tuple[nn.Module, list[dict]]:
    """Train ``model`` in place (on its device) with the loss ``cfg.method``; returns it and the epoch history.

    The training tensors stay on the CPU; each minibatch moves to the model's device.
    """
    seed_everything(cfg.seed)
    loss_fn = losses.get(cfg.method).fn
    dev = next(model.parameters()).device
    opt = OPTIMIZERS[cfg.optimizer](model.parameters(), cfg)
    sched = SCHEDULES[cfg.schedule](opt, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = data.x_train, data.y_train
    history, best_state, best_val = [], None, -1.0
    bar = progress(range(cfg.epochs), f"{cfg.arch}/{cfg.method}")
    for epoch in bar:
        model.train()
        eps = _eps_at(cfg, epoch)
        perm = torch.randperm(len(y), generator=gen)
        total = 0.0
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = loss_fn(model, x[idx].to(dev), y[idx].to(dev), cfg, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        if not math.isfinite(total):
            raise FloatingPointError(f"training {cfg.arch}/{cfg.method} diverged in epoch {epoch + 1} (loss {total}); "
                                     f"lower the learning rate (lr = {cfg.lr})")
        model.eval()
        val_acc = accuracy(model, data.x_val, data.y_val) if len(data.y_val) else None
        history.append({"epoch": epoch + 1, "loss": total / len(y), "val_accuracy": val_acc, "eps": eps})
        bar.set_postfix(loss=f"{total / len(y):.3f}", val=f"{val_acc if val_acc is not None else float('nan'):.3f}",
                        refresh=False)
        if cfg.select == "val_accuracy" and val_acc is not None and val_acc > best_val:
            best_val, best_state = val_acc, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


def checkpoint_path(cfg: TrainConfig, data: Data) -> Path:
    return cache_dir() / "models" / f"{cfg.key(data)}.pt"


def _matches(model: nn.Module):
    """A validator for cached weights: the same keys and shapes as ``model`` (else: another architecture)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    def validate(state: dict) -> None:
        got = {k: tuple(v.shape) for k, v in state.items()}
        if got != expected:
            missing = sorted(set(expected) - set(got))[:3]
            raise ValueError(f"weights of another architecture (missing {missing or 'none'}, "
                             f"{len(got)} tensors for {len(expected)})")
    return validate


def trained_state(cfg: TrainConfig, data: Data, init: nn.Module | None = None) -> dict:
    """Train without touching the cache and return the weights on the CPU (a unit of work: see :func:`unit`)."""
    model = train(cfg, data, init=init, cache=False)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def unit(cfg: TrainConfig, data: Data, init: nn.Module | None = None, name: str | None = None):
    """This training as a :class:`robustbook.executor.Unit`: it runs anywhere (a Ray worker), and the driver
    writes its weights as the same cache entry :func:`train` reads."""
    from .executor import Unit

    validate_config(cfg, fine_tune=init is not None)
    keyed = replace(cfg, loss_options={**cfg.loss_options, "init": model_fingerprint(init)}) if init is not None \
        else cfg
    path = checkpoint_path(keyed, data)
    return Unit(name or path.stem, path, "model", path.stem, trained_state,
                (cfg, data, None if init is None else copy.deepcopy(init).cpu()),
                {"config": asdict(keyed), "dataset": data.name})


def train(cfg: TrainConfig, data: Data, init: nn.Module | None = None, cache: bool = True) -> nn.Module:
    """A model trained with ``cfg`` on ``data``, loaded from the cache when it was trained before.

    ``init`` fine-tunes a copy of an existing model instead of a fresh ``cfg.arch``
    network (its weights then join the cache key). The model lives on :func:`robustbook.runtime.device`.
    """
    validate_config(cfg, fine_tune=init is not None)
    if init is not None:
        cfg = replace(cfg, loss_options={**cfg.loss_options, "init": model_fingerprint(init)})
    path = checkpoint_path(cfg, data)
    key = path.stem
    seed_everything(cfg.seed)
    model = copy.deepcopy(init) if init is not None else build_model(cfg.arch, data.input_shape, data.num_classes,
                                                                      **cfg.arch_options)
    wrap = losses.get(cfg.method).wrap
    if wrap is not None and init is None:
        model = wrap(model, cfg)
    model = model.to(device())
    if hasattr(model, "trace"):
        model.trace(data.input_shape)
    if cache:
        state = cache_load(path, "model", key, validate=_matches(model))
        if state is not None:
            model.load_state_dict(state)
            return model.eval()
    with timed("training"):
        model, history = fit(model, data, cfg)
    if cache:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        cache_save(path, state, "model", key, {"config": asdict(cfg), "dataset": data.name})
        save_json({"config": asdict(cfg), "dataset": data.name, "history": history}, path.with_suffix(".json"))
    return model
