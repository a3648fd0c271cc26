"""Lipschitz certificates in one forward pass: GloRo nets, relaxed top-K and affinity robustness.

A GloRo net (Leino et al., ICML 2021) bounds the Lipschitz constant of every logit
difference and adds a "bottom" logit that wins exactly when the prediction is not certified
in the L2 ball of radius eps.  Leino & Fredrikson (NeurIPS 2021) relax what must be
invariant: a top-k *set* for some k <= K (relaxed top-K, RTK), or a top-k set that lies
inside an affinity group.  This module is, as far as we know, the first PyTorch
implementation of the two relaxations.

* :func:`layer_lipschitz` — per-layer L2 Lipschitz bounds: dense and conv layers by
  warm-started power iteration (training) or soundly (exact SVD for dense layers; exact
  operator matrix or an FFT upper bound for convolutions); ReLU, MinMax, flatten,
  non-overlapping max-pool and dropout are 1; anything else is refused.
* :class:`GloroNet` — wraps an ``nn.Sequential``; ``forward`` gives the logits,
  ``augmented`` the logits plus the bottom logit, ``certify`` the certificate per point.
* :func:`gloro_loss` — cross-entropy or TRADES over the augmented logits (registered in
  :data:`robustbook.train.LOSSES` as ``"gloro"``).

Soundness: ties are never certified (a margin must be strictly positive), certificates are
computed from sound constants (recomputed after any training step or weight load), and
unknown layers raise instead of counting as 1-Lipschitz.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models import MinMax

RELAXATIONS = ("local", "rtk", "affinity")
_ONE_LIPSCHITZ = (nn.ReLU, MinMax, nn.Flatten, nn.Identity, nn.Dropout)
EXACT_CONV_MAX_ENTRIES = 4_000_000   # build the conv operator matrix when it has at most this many entries


class UnknownLayer(TypeError):
    """A layer whose Lipschitz constant this module cannot bound."""


# --------------------------------------------------------------------------- per-layer bounds
def _operator(layer: nn.Module):
    """The linear map of a dense / conv layer without its bias."""
    if isinstance(layer, nn.Linear):
        return lambda v: F.linear(v, layer.weight)
    return lambda v: F.conv2d(v, layer.weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)


def power_iteration(layer: nn.Module, v: torch.Tensor, iters: int) -> torch.Tensor:
    """``iters`` steps of v <- A^T A v / ||A^T A v|| for the layer's operator A (no gradient)."""
    op = _operator(layer)
    with torch.enable_grad():
        for _ in range(iters):
            v = v.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(0.5 * op(v).pow(2).sum(), v)   # A^T A v
            v = g / g.norm().clamp_min(1e-30)   # no epsilon added to the norm (cf. gloro issue #8)
    return v.detach()


def sigma_from_iterate(layer: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """||A v|| for a unit iterate v: differentiable in the weights, a lower estimate of sigma_max."""
    return _operator(layer)(v / v.norm()).norm()


def exact_sigma(layer: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """A sound spectral norm: exact SVD for dense layers; for convolutions the exact operator
    matrix when small, else the circular-convolution FFT bound (Sedghi et al., 2019), which upper-bounds
    the zero-padded, strided convolution (a restriction of the circular one on the padded grid)."""
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            return torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2).float()
        n = math.prod(input_shape)
        h_out = (input_shape[1] + 2 * layer.padding[0] - layer.dilation[0] * (layer.kernel_size[0] - 1) - 1) // layer.stride[0] + 1
        w_out = (input_shape[2] + 2 * layer.padding[1] - layer.dilation[1] * (layer.kernel_size[1] - 1) - 1) // layer.stride[1] + 1
        if n * layer.out_channels * h_out * w_out <= EXACT_CONV_MAX_ENTRIES:
            basis = torch.eye(n, dtype=torch.float64).reshape(n, *input_shape)
            w = layer.weight.detach().double()
            out = F.conv2d(basis, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
            return torch.linalg.matrix_norm(out.reshape(n, -1), ord=2).float()
        if layer.groups != 1 or layer.dilation != (1, 1):
            raise UnknownLayer("FFT bound implemented for groups=1, dilation=1 convolutions only")
        h = input_shape[1] + 2 * layer.padding[0]
        w = input_shape[2] + 2 * layer.padding[1]
        kernel = torch.fft.fft2(layer.weight.detach().double(), s=(max(h, layer.kernel_size[0]), max(w, layer.kernel_size[1])))
        return torch.linalg.matrix_norm(kernel.permute(2, 3, 0, 1), ord=2).max().float()


def check_layer(layer: nn.Module) -> str:
    """'linear' for dense/conv layers, 'one' for 1-Lipschitz layers; raises for anything else."""
    if isinstance(layer, (nn.Linear, nn.Conv2d)):
        return "linear"
    if isinstance(layer, nn.MaxPool2d):
        k, s = layer.kernel_size, layer.stride
        k = k if isinstance(k, tuple) else (k, k)
        s = s if isinstance(s, tuple) else (s, s)
        if k[0] <= s[0] and k[1] <= s[1] and layer.dilation in (1, (1, 1)):
            return "one"
        raise UnknownLayer(f"overlapping max-pool {layer} is not 1-Lipschitz in L2; refused")
    if isinstance(layer, _ONE_LIPSCHITZ):
        return "one"
    raise UnknownLayer(f"no Lipschitz bound for layer {type(layer).__name__}; valid layers: Linear, Conv2d, "
                       f"ReLU, MinMax, Flatten, Identity, Dropout, non-overlapping MaxPool2d")


# --------------------------------------------------------------------------- the GloRo net
@dataclass
class Certificate:
    """Per point: the prediction, whether a (relaxed) certificate holds, the certified set, and the radius.

    ``certified_set[n]`` is a boolean mask over classes: the top-k set certified for the
    largest certified k (empty when not certified).  ``radius`` is the local-robustness
    radius min_i (y_j - y_i) / K_ji of the top-1 prediction (0 on ties).
    """

    prediction: torch.Tensor
    certified: torch.Tensor
    certified_set: torch.Tensor
    set_size: torch.Tensor
    radius: torch.Tensor

    def vra(self, y: torch.Tensor) -> float:
        """Verified-robust accuracy: certified and the label lies in the certified set."""
        hit = self.certified_set[torch.arange(len(y)), y]
        return (self.certified & hit).double().mean().item()

    @property
    def rejection_rate(self) -> float:
        return (~self.certified).double().mean().item()


def _membership(groups: Sequence[Sequence[int]] | None, num_classes: int) -> torch.Tensor | None:
    if groups is None:
        return None
    groups = [list(g) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("affinity groups must be a non-empty list of non-empty groups")
    bad = sorted({c for g in groups for c in g if not (isinstance(c, int) and 0 <= c < num_classes)})
    if bad:
        raise ValueError(f"affinity groups contain class ids outside 0..{num_classes - 1}: {bad}")
    covered = {c for g in groups for c in g}
    groups += [[c] for c in range(num_classes) if c not in covered]   # a class in no group is its own group
    member = torch.zeros(len(groups), num_classes, dtype=torch.bool)
    for i, g in enumerate(groups):
        member[i, g] = True
    return member


def relaxation_margins(y: torch.Tensor, K: torch.Tensor, eps: float, k_max: int,
                       member: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """m_k for k = 1..k_max (n, k_max) and the class order (n, C) — the reference code's RTK rule.

    m_k = min over the top-k classes j_l and every class i outside the top-k of
    y_{j_l} - y_i - eps * K[j_l, i].  The top-k set is certified invariant when m_k > 0.
    With ``member`` (groups x classes), m_k = -inf unless the top-k set lies inside a group.
    """
    n, C = y.shape
    k_max = min(k_max, C - 1)
    order = y.argsort(dim=1, descending=True, stable=True)
    top = order[:, :k_max]                                         # j_1..j_K
    y_top = y.gather(1, top)                                       # (n, K)
    # M[n, l, r] = y_{j_l} - y_{order r} - eps K[j_l, order r]
    k_rows = K[top]                                                # (n, K, C), columns by class id
    k_rows = k_rows.gather(2, order[:, None, :].expand(-1, k_max, -1))
    y_sorted = y.gather(1, order)
    M = y_top[:, :, None] - y_sorted[:, None, :] - eps * k_rows    # (n, K, C), columns by rank
    suffix = M.flip(2).cummin(2).values.flip(2)                    # min over ranks >= r
    S = suffix[:, :, 1:k_max + 1]                                  # (n, l, k): min over i outside T_k
    rows = torch.arange(k_max)
    S = S.masked_fill(rows[:, None] >= rows[None, :] + 1, float("inf"))   # only l <= k
    m = S.min(1).values                                            # (n, k_max)
    if member is not None:
        in_group = member[:, top].permute(1, 0, 2).long().cumprod(2).bool()  # (n, groups, k): T_k inside the group
        m = m.masked_fill(~in_group.any(1), float("-inf"))
    return m, order


class GloroNet(nn.Module):
    """A GloRo wrapper around an ``nn.Sequential`` whose last layer is ``nn.Linear``.

    relaxation: ``"local"`` (standard local robustness), ``"rtk"`` (relaxed top-K, with
    ``K``) or ``"affinity"`` (with ``groups``: lists of class ids; a class may sit in
    several groups; a class in no group is its own group).  Threat model: L2 ball of radius eps.
    """

    def __init__(self, model: nn.Sequential, eps: float, relaxation: str = "local", K: int = 1,
                 groups: Sequence[Sequence[int]] | None = None, power_iters: int = 5):
        super().__init__()
        if not isinstance(model, nn.Sequential) or not isinstance(model[-1], nn.Linear):
            raise TypeError("GloroNet needs an nn.Sequential ending in nn.Linear")
        if relaxation not in RELAXATIONS:
            raise ValueError(f"unknown relaxation {relaxation!r}; valid choices: {', '.join(RELAXATIONS)}")
        self.model, self.eps, self.relaxation, self.power_iters = model, float(eps), relaxation, power_iters
        C = model[-1].out_features
        if relaxation == "rtk" and not 1 <= K < C:
            raise ValueError(f"K must be between 1 and {C - 1}; got {K}")
        member = _membership(groups, C) if relaxation == "affinity" else None
        if relaxation == "affinity" and groups is None:
            raise ValueError("affinity robustness needs groups")
        self.K = K if relaxation == "rtk" else (int(member.sum(1).max()) if member is not None else 1)
        self.register_buffer("member", member if member is not None else torch.zeros(0, C, dtype=torch.bool))
        self.body = [layer for layer in model[:-1]]
        self.kinds = [check_layer(layer) for layer in self.body]       # refuses unknown layers now
        self._shapes: list[tuple[int, ...]] | None = None
        self._iterates: list[torch.Tensor] = []
        self._sound: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- shapes and iterates
    def _ensure_shapes(self, x: torch.Tensor) -> None:
        if self._shapes is not None:
            return
        shapes, h = [], x[:1].detach()
        with torch.no_grad():
            for layer in self.body:
                shapes.append(tuple(h.shape[1:]))
                h = layer(h)
        self._shapes = shapes
        gen = torch.Generator().manual_seed(0)
        for layer, kind, shape in zip(self.body, self.kinds, shapes):
            if kind == "linear":
                v = torch.randn((1, *shape), generator=gen).to(x.device)
                self._iterates.append(v / v.norm())

    def trace(self, input_shape: Sequence[int]) -> "GloroNet":
        """Record the layer input shapes (needed by the conv norms) from one dummy input."""
        self._ensure_shapes(torch.zeros((1, *input_shape), device=self.model[-1].weight.device))
        return self

    def _linear_layers(self):
        if self._shapes is None:
            raise RuntimeError("layer shapes unknown: call net.trace(input_shape) or certify an input first")
        return [(layer, shape) for layer, kind, shape in zip(self.body, self.kinds, self._shapes) if kind == "linear"]

    def lipschitz_sub(self, sound: bool) -> torch.Tensor:
        """Product of the per-layer bounds of every layer before the last one.

        ``sound=False``: warm-started power iteration (``power_iters`` steps, differentiable
        in the weights) — for training.  ``sound=True``: exact / upper-bound norms.
        """
        total = torch.ones((), device=self.model[-1].weight.device)
        for idx, (layer, shape) in enumerate(self._linear_layers()):
            if sound:
                total = total * exact_sigma(layer, shape).to(total.device)
            else:
                self._iterates[idx] = power_iteration(layer, self._iterates[idx], self.power_iters)
                total = total * sigma_from_iterate(layer, self._iterates[idx])
        return total

    def converge(self, tol: float = 1e-7, max_iters: int = 5000) -> list[float]:
        """Run power iteration until every layer's estimate changes by < tol (relative); returns them."""
        values = []
        for idx, (layer, _) in enumerate(self._linear_layers()):
            prev = 0.0
            for _ in range(max_iters):
                self._iterates[idx] = power_iteration(layer, self._iterates[idx], 10)
                with torch.no_grad():
                    cur = float(sigma_from_iterate(layer, self._iterates[idx]))
                if abs(cur - prev) <= tol * cur:
                    break
                prev = cur
            values.append(cur)
        return values

    def pair_constants(self, sound: bool) -> torch.Tensor:
        """K[j, i] = L_sub * ||w_j - w_i||_2: a Lipschitz bound of the logit difference y_j - y_i."""
        w = self.model[-1].weight
        return self.lipschitz_sub(sound) * torch.cdist(w[None], w[None])[0]

    def sound_constants(self) -> torch.Tensor:
        """The pair constants K computed soundly from the current weights (call again after any change)."""
        with torch.no_grad():
            return self.pair_constants(sound=True)

    # -- outputs
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def margins(self, x: torch.Tensor, eps: float | None = None, constants: torch.Tensor | None = None):
        """Logits, pair constants, the relaxation margins m_k and the class order.

        In training mode the constants come from power iteration (differentiable); in eval
        mode they are sound, recomputed from the weights unless ``constants`` is given.
        """
        self._ensure_shapes(x)
        y = self.model(x)
        if constants is None:
            constants = self.pair_constants(sound=False) if self.training else self.sound_constants()
        member = self.member if self.relaxation == "affinity" else None
        m, order = relaxation_margins(y, constants, self.eps if eps is None else eps, self.K, member)
        return y, constants, m, order

    def augmented(self, x: torch.Tensor, eps: float | None = None, constants: torch.Tensor | None = None) -> torch.Tensor:
        """[y, y_bot] with y_bot = max(y) - max_k m_k: bottom wins iff no k <= K is certified
        (on an exact tie the bottom logit equals the top one; :meth:`certify` never certifies ties)."""
        y, _, m, _ = self.margins(x, eps, constants)
        bottom = y.max(1).values - m.max(1).values
        return torch.cat([y, bottom[:, None]], 1)

    @torch.no_grad()
    def certify(self, x: torch.Tensor, eps: float | None = None, constants: torch.Tensor | None = None,
                batch_size: int = 4096) -> Certificate:
        """Certificates for a batch, in one forward pass once ``constants`` (:meth:`sound_constants`) are known."""
        was = self.training
        self.eval()
        self._ensure_shapes(x)
        constants = self.sound_constants() if constants is None else constants
        parts = []
        for i in range(0, len(x), batch_size):
            y, K, m, order = self.margins(x[i:i + batch_size], eps, constants)
            ok = m > 0                                              # strictly: a tie is never certified
            size = torch.where(ok.any(1), ok.shape[1] - ok.flip(1).long().argmax(1), torch.zeros_like(order[:, 0]))
            ranks = torch.arange(y.shape[1], device=y.device)[None, :]
            in_set = torch.zeros_like(y, dtype=torch.bool).scatter(1, order, ranks < size[:, None])
            j = order[:, 0]
            gap = y.gather(1, j[:, None]) - y
            ratio = torch.where(gap <= 0, torch.zeros_like(gap), gap / K[j])
            radius = ratio.masked_fill(ranks == j[:, None], float("inf")).min(1).values
            parts.append((j, size > 0, in_set, size, radius))
        self.train(was)
        return Certificate(*(torch.cat(p) for p in zip(*parts)))


# --------------------------------------------------------------------------- training
def gloro_loss(model: GloroNet, x: torch.Tensor, y: torch.Tensor, cfg, eps: float) -> torch.Tensor:
    """Cross-entropy over the augmented logits (label never bot), or with ``trades_lambda`` > 0
    CE(y) - lambda * log(1 - p_bot) (the TRADES form of the GloRo paper)."""
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


# --------------------------------------------------------------------------- data
def cifar100_superclasses() -> list[list[int]]:
    """The 20 CIFAR-100 superclasses as lists of fine-label ids (shipped as data in the library)."""
    spec = json.loads(resources.files("robustbook").joinpath("data_files/cifar100_superclasses.json").read_text())
    index = {name: i for i, name in enumerate(spec["fine_labels"])}
    return [[index[name] for name in members] for members in spec["superclasses"].values()]


# Named affinity groupings, as data.  ``digits_confusable``: the sets an RT3 GloRo net certified
# most often on the digits' training and validation splits (never the test split) — digits whose
# 8x8 strokes overlap: 3/5/9 and 3/8/9 share the right-hand curves, 1/2/8 the slanted stroke and
# base, 0/6 the closed loop, 1/4 the vertical bar.
AFFINITY_GROUPS: dict[str, object] = {
    "digits_confusable": [[3, 5, 9], [3, 8, 9], [1, 2, 8], [0, 6], [1, 4]],
    "cifar100_superclasses": cifar100_superclasses,
}


def affinity_groups(name: str) -> list[list[int]]:
    if name not in AFFINITY_GROUPS:
        raise ValueError(f"unknown affinity grouping {name!r}; valid choices: {', '.join(AFFINITY_GROUPS)}")
    groups = AFFINITY_GROUPS[name]
    return [list(g) for g in (groups() if callable(groups) else groups)]


# --------------------------------------------------------------------------- chapter helpers
def relaxation_configs(base: dict, eps: float, rtk_k: Sequence[int], groups: list[list[int]],
                       trades_lambda: float) -> dict:
    """TrainConfigs of one GloRo net per guarantee: local, rtk<K> for each K, affinity.

    Trained at 1.1 x eps with eps ramped up over the first half of training (as the GloRo code does).
    """
    from .train import TrainConfig

    variants = {"local": {}, **{f"rtk{k}": {"relaxation": "rtk", "K": k} for k in rtk_k},
                "affinity": {"relaxation": "affinity", "groups": groups}}
    return {name: TrainConfig(**base, method="gloro", eps=1.1 * eps, eps_warmup=0.5,
                              loss_options={**v, "trades_lambda": trades_lambda})
            for name, v in variants.items()}


def evaluate(nets: dict[str, GloroNet], x: torch.Tensor, y: torch.Tensor, eps: float):
    """Clean accuracy, VRA and rejection rate of each net under its own guarantee."""
    import pandas as pd

    rows = {}
    for name, net in nets.items():
        cert = net.certify(x, eps=eps)
        rows[name] = {"clean_accuracy": (cert.prediction == y).double().mean().item(), "vra": cert.vra(y),
                      "rejection_rate": cert.rejection_rate,
                      "mean_certified_set_size": cert.set_size[cert.certified].double().mean().item()}
    return pd.DataFrame(rows).T


def as_relaxation(net: GloroNet, relaxation: str, K: int = 1, groups=None) -> GloroNet:
    """The same trained network certified under another guarantee (weights shared)."""
    return GloroNet(net.model, net.eps, relaxation, K, groups).eval()


def set_change(mask: torch.Tensor):
    """A PGD loss that is > 0 exactly when the set ``mask`` is no longer the top-|mask| set."""
    def loss(logits: torch.Tensor, _target) -> torch.Tensor:
        outsider = logits.masked_fill(mask, float("-inf")).max(1).values
        member = logits.masked_fill(~mask, float("inf")).min(1).values
        return outsider - member
    return loss


def attack_certificates(net: GloroNet, x: torch.Tensor, eps: float, steps: int = 50, restarts: int = 3) -> dict:
    """Try to break every certificate on ``x`` with L2 PGD inside the eps-ball (and the box).

    For each certified point the attack maximises (best outsider logit - worst logit in the
    certified set); a positive value after the attack would be a soundness violation.
    """
    from .attacks import pgd

    cert = net.certify(x, eps=eps)
    xs, mask = x[cert.certified], cert.certified_set[cert.certified]
    if len(xs) == 0:
        return {"certified_points_attacked": 0, "soundness_violations": 0, "closest_gap": float("nan")}
    x_adv = pgd(net, xs, mask, eps, "L2", steps=steps, restarts=restarts, loss_fn=set_change(mask))
    with torch.no_grad():
        gap = set_change(mask)(net(x_adv), None)
    return {"certified_points_attacked": len(xs), "soundness_violations": int((gap >= 0).sum()),
            "closest_gap": float(gap.max())}


def lipschitz_report(net: GloroNet, x: torch.Tensor) -> dict:
    """Converged power iteration against the sound per-layer norms (their product is L_sub)."""
    net._ensure_shapes(x)
    power = torch.tensor(net.converge()).prod().item()
    exact = math.prod(float(exact_sigma(layer, shape)) for layer, shape in net._linear_layers())
    return {"power_iteration": power, "exact": exact, "ratio": power / exact}


def guarantee_ordering(nets: dict[str, GloroNet], x: torch.Tensor, y: torch.Tensor, eps: float,
                       groups: list[list[int]]):
    """VRA of each trained net certified as local, affinity and RTK_K (K = largest group), weights shared.

    On one net the three are ordered by construction (local <= affinity <= RTK_K); returns the
    table and whether every row respects the order.
    """
    import pandas as pd

    K = max(len(g) for g in groups)
    rows = {}
    for trained, net in nets.items():
        variants = {"local": as_relaxation(net, "local"), "affinity": as_relaxation(net, "affinity", groups=groups),
                    f"rtk{K}": as_relaxation(net, "rtk", K=K)}
        rows[f"trained for {trained}"] = evaluate(variants, x, y, eps)["vra"]
    table = pd.DataFrame(rows).T
    ordered = bool(((table["local"] <= table["affinity"]) & (table["affinity"] <= table[f"rtk{K}"])).all())
    return table, ordered
