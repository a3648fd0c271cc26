"""Architectures by name, and RobustBench models.

``build_model(arch, input_shape, num_classes, **options)`` builds a fresh network;
:data:`ARCHITECTURES` lists the names.  ``load_robustbench(name, dataset, threat_model,
model_dir)`` loads a RobustBench zoo model and is the only place that imports robustbench.
"""
from __future__ import annotations

import math
import socket
import sys
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn


class MinMax(nn.Module):
    """GroupSort with groups of two: sorts neighbouring channels (1-Lipschitz, gradient-norm preserving)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % 2:
            raise ValueError("MinMax needs an even number of channels")
        a, b = x.unflatten(1, (x.shape[1] // 2, 2)).unbind(2)
        return torch.stack((torch.minimum(a, b), torch.maximum(a, b)), 2).flatten(1, 2)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "minmax": MinMax}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid choices: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def linear(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Multinomial logistic regression: the one model whose input margin is exactly computable."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def _spectral(model: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al., 2018) of every dense and conv weight.

    torch normalises the kernel reshaped to a matrix, which for a convolution is not its
    exact operator norm: the network is Lipschitz-*constrained*, not certified.
    """
    from torch.nn.utils.parametrizations import spectral_norm

    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            spectral_norm(module)
    return model


def mlp(input_shape, num_classes, width: int = 128, depth: int = 2, dropout: float = 0.0,
        activation: str = "relu", spectral_norm: bool = False) -> nn.Module:
    """``depth`` hidden layers of ``width`` units (optionally spectrally normalised)."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), _activation(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    model = nn.Sequential(*layers)
    return _spectral(model) if spectral_norm else model


def cnn(input_shape, num_classes, width: int = 32, depth: int = 2, hidden: int | None = None,
        dropout: float = 0.0, activation: str = "relu", spectral_norm: bool = False) -> nn.Module:
    """A small CNN: ``depth`` 3x3 convolutions with ``width * 2**i`` channels; the first keeps
    the size, each later one halves it; then a dense layer of ``hidden`` (default 4 * width) units.

    With the defaults an 8x8 digit becomes 64 maps of 4x4 before the dense layer; the same
    definition serves 28x28 and 32x32 inputs.
    """
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for i in range(depth):
        out, stride = width * 2**i, (1 if i == 0 else 2)
        layers += [nn.Conv2d(c, out, 3, stride=stride, padding=1), _activation(activation)]
        c, h, w = out, (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    layers.append(nn.Flatten())
    if dropout:
        layers.append(nn.Dropout(dropout))
    hidden = hidden or 4 * width
    layers += [nn.Linear(c * h * w, hidden), _activation(activation), nn.Linear(hidden, num_classes)]
    model = nn.Sequential(*layers)
    return _spectral(model) if spectral_norm else model


def convnet(input_shape, num_classes, convs: Sequence[Sequence[int]] = ((16, 4, 2), (32, 4, 2)),
            dense: Sequence[int] = (100,), activation: str = "minmax", orthogonal: bool = True) -> nn.Module:
    """The GloRo papers' "xCyF" networks: convolutions given as (channels, kernel, stride) with
    padding (kernel - 1) // 2, then dense layers; MinMax activations and orthogonal initialisation.
    """
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for out, k, stride in convs:
        pad = (k - 1) // 2
        layers += [nn.Conv2d(c, out, k, stride=stride, padding=pad), _activation(activation)]
        c, h, w = out, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    layers.append(nn.Flatten())
    fan_in = c * h * w
    for units in dense:
        layers += [nn.Linear(fan_in, units), _activation(activation)]
        fan_in = units
    layers.append(nn.Linear(fan_in, num_classes))
    model = nn.Sequential(*layers)
    if orthogonal:
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.orthogonal_(m.weight)
                nn.init.zeros_(m.bias)
    return model


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "linear": linear,
    "mlp": mlp,
    "cnn": cnn,
    "2C2F": lambda s, n, **kw: convnet(s, n, ((16, 4, 2), (32, 4, 2)), (100,), **kw),
    "4C3F": lambda s, n, **kw: convnet(s, n, ((32, 3, 1), (32, 4, 2), (64, 3, 1), (64, 4, 2)), (512, 512), **kw),
    "6C2F": lambda s, n, **kw: convnet(s, n, ((32, 3, 1), (32, 3, 1), (32, 4, 2), (64, 3, 1), (64, 3, 1), (64, 4, 2)),
                                       (512,), **kw),
}


def build_model(arch: str, input_shape: Sequence[int], num_classes: int, **options) -> nn.Module:
    """A freshly initialised network of a registered architecture (on the CPU; callers move it)."""
    from . import validate as check

    check.choice("arch", arch, ARCHITECTURES)
    check.number("num_classes", num_classes, low=2, integer=True)
    if len(input_shape) not in (1, 3) or any(int(s) < 1 for s in input_shape):
        raise check.InvalidArgument(f"input_shape must be (features,) or (channels, height, width); got {tuple(input_shape)}")
    if arch in ("cnn", "2C2F", "4C3F", "6C2F") and len(input_shape) != 3:
        raise check.InvalidArgument(f"arch {arch!r} needs image inputs (channels, height, width); got {tuple(input_shape)}")
    for key in ("width", "depth", "hidden"):
        if key in options and options[key] is not None:
            check.number(f"arch_options[{key!r}]", options[key], low=1, integer=True)
    if "dropout" in options:
        check.number("arch_options['dropout']", options["dropout"], low=0.0, high=0.99)
    import inspect

    params = inspect.signature(ARCHITECTURES[arch]).parameters
    known = [p for p, v in params.items() if p not in ("input_shape", "num_classes") and v.kind is v.POSITIONAL_OR_KEYWORD
             or v.kind is v.KEYWORD_ONLY]
    takes_any = any(v.kind is v.VAR_KEYWORD for v in params.values())
    unknown = [] if takes_any else sorted(set(options) - set(known))
    if unknown:
        raise check.InvalidArgument(f"arch {arch!r} has no option(s) {', '.join(map(repr, unknown))}; "
                                    f"valid options: {', '.join(known)}")
    return ARCHITECTURES[arch](tuple(input_shape), num_classes, **options)


# --------------------------------------------------------------------------- RobustBench
class ModelNotAvailable(FileNotFoundError):
    """A RobustBench checkpoint is not on disk and could not be downloaded."""


def _import_robustbench():
    """Import robustbench 1.1.1, working around its broken AutoAttack import.

    robustbench 1.1.1 does ``from autoattack import AutoAttack``, but its dependency
    ``pyautoattack`` installs that package under the module name ``pyautoattack``.  Aliasing
    the module before the import makes robustbench import unchanged.  (It also imports
    ``pkg_resources``, which is why the environment pins setuptools < 81.)
    """
    import warnings

    if "autoattack" not in sys.modules:
        import pyautoattack
        import pyautoattack.state  # robustbench.eval imports autoattack.state

        sys.modules["autoattack"] = pyautoattack
        sys.modules["autoattack.state"] = pyautoattack.state
    with warnings.catch_warnings():   # its pkg_resources import warns about setuptools' future; not ours to fix
        warnings.simplefilter("ignore")
        import robustbench

    return robustbench


def robustbench_checkpoint(name: str, dataset: str = "cifar10", threat_model: str = "Linf",
                           model_dir: str | Path = "models") -> Path:
    """Where robustbench looks for (and downloads) a checkpoint."""
    return Path(model_dir) / dataset / threat_model / f"{name}.pt"


def load_robustbench(name: str, dataset: str = "cifar10", threat_model: str = "Linf",
                     model_dir: str | Path | None = None, timeout: float = 20.0) -> nn.Module:
    """Load a RobustBench zoo model in eval mode.

    The checkpoint is read from ``model_dir/<dataset>/<threat_model>/<name>.pt`` (robustbench
    loads it with ``torch.load``, whose default is ``weights_only=True`` on this torch), and
    downloaded there when missing.  Offline, the error names the file to provide.
    """
    from .runtime import cache_dir

    rb = _import_robustbench()
    from robustbench.model_zoo import model_dicts

    datasets = {d.value: d for d in model_dicts}
    if dataset not in datasets:
        raise ValueError(f"unknown RobustBench dataset {dataset!r}; valid choices: {', '.join(datasets)}")
    zoo = model_dicts[datasets[dataset]]
    threats = {t.value: t for t in zoo}
    if threat_model not in threats:
        raise ValueError(f"unknown threat model {threat_model!r} for {dataset}; valid choices: {', '.join(threats)}")
    names = zoo[threats[threat_model]]
    if name not in names:
        raise ValueError(
            f"unknown RobustBench model {name!r} for {dataset}/{threat_model}; "
            f"{len(names)} valid choices, e.g. {', '.join(list(names)[:5])}"
        )
    from .runtime import device

    model_dir = Path(model_dir) if model_dir else cache_dir() / "robustbench"
    path = robustbench_checkpoint(name, dataset, threat_model, model_dir)
    existed = path.is_file()
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        model = rb.load_model(model_name=name, model_dir=str(model_dir), dataset=dataset,
                              threat_model=threat_model)
    except Exception as err:
        if not existed:
            path.unlink(missing_ok=True)   # never leave a partial download where a checkpoint belongs
            raise ModelNotAvailable(
                f"RobustBench model {name!r} is not on disk and could not be downloaded "
                f"({type(err).__name__}: {err}).\nPut its checkpoint at {path} "
                f"(on a machine with internet: robustbench.utils.load_model({name!r}, "
                f"model_dir='models', dataset={dataset!r}, threat_model={threat_model!r}) "
                f"writes it there)."
            ) from None
        raise
    finally:
        socket.setdefaulttimeout(old)
    return model.to(device()).eval()


def robustbench_architecture(name: str, dataset: str = "cifar10", threat_model: str = "Linf") -> nn.Module:
    """The untrained zoo architecture of a RobustBench entry (used by tests to write a checkpoint)."""
    _import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)][name]["model"]()


def estimate_training_bytes(arch: str, input_shape: Sequence[int], num_classes: int, batch_size: int = 64,
                            **options) -> int:
    """Bytes a training step of this architecture needs, estimated without allocating anything.

    The model is built on torch's ``meta`` device: parameters (with gradients and two Adam moments:
    x4) plus every layer's activations for one batch (kept for the backward pass: x2), in float32.
    """
    with torch.device("meta"):
        model = build_model(arch, input_shape, num_classes, **options)
        params = sum(p.numel() for p in model.parameters())
        h, activations = torch.empty((batch_size, *input_shape)), 0
        for layer in model if isinstance(model, nn.Sequential) else [model]:
            h = layer(h)
            activations += h.numel()
    return int(4 * (4 * params + 2 * activations))
