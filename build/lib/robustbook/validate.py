"""One validation layer for the library's entry points and the chapters' parameters.

Every check raises :class:`InvalidArgument` (a ``ValueError``) whose message names the argument,
the value it got and what would be right, before any work is done: a NaN radius, a top-K at or
above the number of classes, an empty batch or an image of the wrong shape never cost a training
run or a cache entry.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable, Sequence

import torch


class InvalidArgument(ValueError):
    """An argument is wrong; the message names it and says what would be right."""


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(name: str, value, *, low: float | None = None, high: float | None = None, low_open: bool = False,
           integer: bool = False) -> float | int:
    """A finite number (an ``int`` when ``integer``) in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (Integral if integer else Real)):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not integer:
            value = float(value)
        else:
            kind = "an integer" if integer else "a number"
            raise InvalidArgument(f"{name} must be {kind}; got {_show(value)} ({type(value).__name__})")
    if not integer and not math.isfinite(float(value)):
        raise InvalidArgument(f"{name} must be a finite number; got {value}")
    if low is not None and (value <= low if low_open else value < low) or high is not None and value > high:
        lo = "(" if low_open else "["
        raise InvalidArgument(f"{name} = {value} is out of range {lo}{low if low is not None else '-inf'}, "
                              f"{high if high is not None else 'inf'}]")
    return int(value) if integer else float(value)


def radius(name: str, value, *, allow_zero: bool = True) -> float:
    """A perturbation radius: finite and >= 0 (> 0 unless ``allow_zero``)."""
    return number(name, value, low=0.0, low_open=not allow_zero)


def choice(name: str, value, choices: Iterable) -> object:
    choices = list(choices)
    if value not in choices:
        raise InvalidArgument(f"{name} = {_show(value)} is not valid; valid choices: {', '.join(map(str, choices))}")
    return value


def non_empty(name: str, values: Sequence) -> Sequence:
    if values is None or len(values) == 0:
        raise InvalidArgument(f"{name} must not be empty")
    return values


def batch(name: str, x, *, input_shape: Sequence[int] | None = None) -> torch.Tensor:
    """A non-empty floating batch (N, ...) of finite values, shaped like ``input_shape`` when given."""
    if not isinstance(x, torch.Tensor):
        raise InvalidArgument(f"{name} must be a torch.Tensor batch of shape (N, ...); got {type(x).__name__}")
    if x.dim() < 2:
        raise InvalidArgument(f"{name} must be a batch of shape (N, ...) with N inputs; got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise InvalidArgument(f"{name} is an empty batch (shape {tuple(x.shape)}); pass at least one input")
    if not x.is_floating_point():
        raise InvalidArgument(f"{name} must hold floating-point pixels in [0, 1]; got dtype {x.dtype}")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise InvalidArgument(f"{name} has inputs of shape {tuple(x.shape[1:])}; the model expects {tuple(input_shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InvalidArgument(f"{name} holds NaN or infinite values")
    return x


def labels(name: str, y, n: int, num_classes: int | None = None) -> torch.Tensor:
    """``n`` integer labels, each in ``0..num_classes-1`` when that is given."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.dtype not in (torch.int64, torch.int32, torch.int16,
                                                                          torch.uint8):
        raise InvalidArgument(f"{name} must be a 1-D integer tensor of labels; got "
                              f"{type(y).__name__}{tuple(y.shape) if isinstance(y, torch.Tensor) else ''}")
    if len(y) != n:
        raise InvalidArgument(f"{name} has {len(y)} labels for {n} inputs")
    if num_classes is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise InvalidArgument(f"{name} holds labels outside 0..{num_classes - 1}")
    return y


def top_k(name: str, K, num_classes: int) -> int:
    """A relaxed top-K: an integer with 1 <= K < number of classes (K = C would certify every input)."""
    K = number(name, K, integer=True)
    if not 1 <= K < num_classes:
        raise InvalidArgument(f"{name} = {K} must be between 1 and {num_classes - 1} for {num_classes} classes "
                              "(with K = number of classes every input would be certified)")
    return K


def class_groups(name: str, groups, num_classes: int) -> list[list[int]]:
    """Affinity groups: a non-empty list of non-empty lists of class ids in ``0..num_classes-1``."""
    if groups is None or not isinstance(groups, (list, tuple)) or len(groups) == 0:
        raise InvalidArgument(f"{name} must be a non-empty list of groups of class ids; got {_show(groups)}")
    out = []
    for g in groups:
        if not isinstance(g, (list, tuple)) or len(g) == 0:
            raise InvalidArgument(f"{name}: every group must be a non-empty list of class ids; got {_show(g)}")
        bad = [c for c in g if isinstance(c, bool) or not isinstance(c, Integral) or not 0 <= c < num_classes]
        if bad:
            raise InvalidArgument(f"{name} contain class ids outside 0..{num_classes - 1}: {bad}")
        out.append([int(c) for c in g])
    return out
