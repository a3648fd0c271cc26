"""Lipschitz certificates in one forward pass: GloRo nets, relaxed top-K and affinity robustness.

A GloRo net (Leino et al., ICML 2021) bounds the Lipschitz constant of every logit
difference and adds a "bottom" logit that wins exactly when the prediction is not certified
in the L2 ball of radius eps. Leino & Fredrikson (NeurIPS 2021) relax what must be
invariant: a top-k *set* for some k <= K (relaxed top-K, RTK), or a top-k set that lies
inside an affinity group. This module is, as far as we know, the first PyTorch
implementation of the two relaxations.

* :func:`layer_lipschitz` bounds — dense and conv layers by warm-started power iteration
  (training) or soundly (exact SVD for dense layers; the exact operator matrix or an FFT upper
  bound for convolutions); ReLU, MinMax, flatten, non-overlapping max-pool and dropout in eval
  mode are 1; anything else is refused.
* :class:`GloroNet` — wraps an ``nn.Sequential``; ``forward`` gives the logits,
  ``augmented`` the logits plus the bottom logit, ``certify`` the certificate per point.

Soundness in floating point: every norm is computed in float64 and rounded *up* on its way into
a certificate; pairwise weight-row distances are explicit float64 differences (``torch.cdist``
switches to a matrix-multiply shortcut beyond 25 rows, which can come out too small); the margin
test compares float64 margins of the float32 logits against a slack that covers the float32
forward pass (:data:`LOGIT_SLACK`); ties are never certified; layers the bound does not cover
(dropout while training, padding other than zeros) are refused.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import validate as check
from .attacks import pgd, predict_logits
from .margins import pairwise_distances
from .models import MinMax
from .runtime import batches, eval_mode, memo, model_device, model_fingerprint, tensor_fingerprint

RELAXATIONS = ("local", "rtk", "affinity")
_ONE_LIPSCHITZ = (nn.ReLU, MinMax, nn.Flatten, nn.Identity)
EXACT_CONV_MAX_ENTRIES = 4_000_000   # build the conv operator matrix when it has at most this many entries
# float64 SVD / FFT errors are ~1e-15 relative; these factors round every norm up by far more.
SVD_ROUND_UP = 1e-10
FFT_ROUND_UP = 1e-8
# A margin of the float32 logits counts only above LOGIT_SLACK * (1 + max |logit|): the float32 forward
# pass of the networks here differs from its exact value by < 1e-5 of that scale (tested against float64).
LOGIT_SLACK = 1e-4


class UnknownLayer(TypeError):
    """A layer whose Lipschitz constant this module cannot bound soundly."""


def _round_up(value: torch.Tensor, rel: float) -> torch.Tensor:
    value = value.double() * (1 + rel)
    return torch.nextafter(value, torch.full_like(value, math.inf))


# --------------------------------------------------------------------------- per-layer bounds
def _operator(layer: nn.Module):
    """The linear map of a dense / conv layer without its bias."""
    if isinstance(layer, nn.Linear):
        return lambda v: F.linear(v, layer.weight)
    return lambda v: F.conv2d(v, layer.weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)


def power_iteration(layer: nn.Module, v: torch.Tensor, iters: int) -> torch.Tensor:
    """``iters`` steps of v <- A^T A v / ||A^T A v|| for the layer's operator A (no gradient).

    A dense layer multiplies by its weight and its transpose; a convolution gets A^T from autograd (the
    gradient of ||A v||^2 / 2), which avoids working out the transposed convolution's output padding."""
    if isinstance(layer, nn.Linear):
        w = layer.weight.detach()
        with torch.no_grad():
            for _ in range(iters):
                g = (v @ w.T) @ w                   # A^T A v for row vectors v
                v = g / g.norm().clamp_min(1e-30)
        return v
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


def _conv_out(layer: nn.Conv2d, size: int, axis: int) -> int:
    return (size + 2 * layer.padding[axis] - layer.dilation[axis] * (layer.kernel_size[axis] - 1) - 1) \
        // layer.stride[axis] + 1


def exact_sigma(layer: nn.Module, input_shape: Sequence[int] | None) -> torch.Tensor:
    """A sound spectral norm (float64, rounded up): exact SVD for dense layers; for convolutions the
    exact operator matrix when small, else the circular-convolution FFT bound (Sedghi et al., 2019),
    which upper-bounds the zero-padded, strided convolution (a restriction of the circular one on the
    padded grid)."""
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            return _round_up(torch.linalg.matrix_norm(layer.weight.detach().double().cpu(), ord=2), SVD_ROUND_UP)
        n = math.prod(input_shape)
        h_out, w_out = _conv_out(layer, input_shape[1], 0), _conv_out(layer, input_shape[2], 1)
        w = layer.weight.detach().double().cpu()
        if n * layer.out_channels * h_out * w_out <= EXACT_CONV_MAX_ENTRIES:
            basis = torch.eye(n, dtype=torch.float64).reshape(n, *input_shape)
            out = F.conv2d(basis, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
            return _round_up(torch.linalg.matrix_norm(out.reshape(n, -1), ord=2), SVD_ROUND_UP)
        if layer.groups != 1 or layer.dilation != (1, 1):
            raise UnknownLayer("FFT bound implemented for groups=1, dilation=1 convolutions only")
        h = input_shape[1] + 2 * layer.padding[0]
        wd = input_shape[2] + 2 * layer.padding[1]
        kernel = torch.fft.fft2(w, s=(max(h, layer.kernel_size[0]), max(wd, layer.kernel_size[1])))
        return _round_up(torch.linalg.matrix_norm(kernel.permute(2, 3, 0, 1), ord=2).max(), FFT_ROUND_UP)


def check_layer(layer: nn.Module) -> str:
    """'linear' for dense/conv layers, 'one' for 1-Lipschitz layers, 'dropout'; raises for anything else."""
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise UnknownLayer(f"{layer}: only zero padding given as numbers is bounded here; "
                               f"padding={layer.padding!r}, padding_mode={layer.padding_mode!r} is refused")
        return "linear"
    if isinstance(layer, nn.Linear):
        return "linear"
    if isinstance(layer, nn.MaxPool2d):
        k, s = layer.kernel_size, layer.stride
        k = k if isinstance(k, tuple) else (k, k)
        s = s if isinstance(s, tuple) else (s, s)
        if k[0] <= s[0] and k[1] <= s[1] and layer.dilation in (1, (1, 1)):
            return "one"
        raise UnknownLayer(f"overlapping max-pool {layer} is not 1-Lipschitz in L2; refused")
    if isinstance(layer, nn.Dropout):
        return "dropout"
    if isinstance(layer, _ONE_LIPSCHITZ):
        return "one"
    raise UnknownLayer(f"no Lipschitz bound for layer {type(layer).__name__}; valid layers: Linear, Conv2d "
                       f"(zero padding), ReLU, MinMax, Flatten, Identity, Dropout (eval mode), non-overlapping MaxPool2d")


# --------------------------------------------------------------------------- certificates
@dataclass
class Certificate:
    """Per point: the prediction, whether a (relaxed) certificate holds, the certified set, and the radius.

    ``certified_set[n]`` is a boolean mask over classes: the top-k set certified for the
    largest certified k (empty when not certified). ``radius`` is the local-robustness
    radius min_i (y_j - y_i - slack) / K_ji of the top-1 prediction (0 on ties).
    """

    prediction: torch.Tensor
    certified: torch.Tensor
    certified_set: torch.Tensor
    set_size: torch.Tensor
    radius: torch.Tensor

    def vra(self, y: torch.Tensor) -> float:
        """Verified-robust accuracy: certified and the label lies in the certified set."""
        hit = self.certified_set[torch.arange(len(y)), y.to(self.certified_set.device)]
        return (self.certified & hit).double().mean().item()

    @property
    def rejection_rate(self) -> float:
        return (~self.certified).double().mean().item()

    def co_certification(self, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        """(C, C) matrix: entry (i, j) is the share of test points of class i whose certified set holds j.

        The diagonal is the share of class i certified with its own label inside the set (its VRA); an
        off-diagonal entry shows which other classes the net had to certify together with class i.
        """
        y = check.labels("y", y, len(self.certified), num_classes).to(self.certified_set.device)
        held = (self.certified[:, None] & self.certified_set).double()
        out = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        for c in range(num_classes):
            rows = held[y == c]
            if len(rows):
                out[c] = rows.mean(0).cpu()
        return out


def _membership(groups: Sequence[Sequence[int]] | None, num_classes: int) -> torch.Tensor | None:
    if groups is None:
        return None
    groups = check.class_groups("groups", groups, num_classes)
    covered = {c for g in groups for c in g}
    groups += [[c] for c in range(num_classes) if c not in covered]   # a class in no group is its own group
    member = torch.zeros(len(groups), num_classes, dtype=torch.bool)
    for i, g in enumerate(groups):
        member[i, g] = True
    return member


def relaxation_margins(y: torch.Tensor, pair_lipschitz: torch.Tensor, eps: float, k_max: int,
                       member: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """m_k for k = 1..k_max (n, k_max) and the class order (n, C) — the reference code's RTK rule.

    m_k = min over the top-k classes j_l and every class i outside the top-k of
    y_{j_l} - y_i - eps * L[j_l, i], with L = ``pair_lipschitz`` (the Lipschitz bound of each logit difference).
    The top-k set is certified invariant when m_k > 0. ``k_max`` is the relaxation's K (the largest set).
    With ``member`` (groups x classes), m_k = -inf unless the top-k set lies inside a group.
    Computed in the dtype of ``y`` and ``pair_lipschitz`` (float64 for certificates).
    """
    n, C = y.shape
    k_max = min(k_max, C - 1)
    order = y.argsort(dim=1, descending=True, stable=True)
    top = order[:, :k_max]                                         # j_1..j_K
    y_top = y.gather(1, top)                                       # (n, K)
    # M[n, l, r] = y_{j_l} - y_{order r} - eps L[j_l, order r]
    k_rows = pair_lipschitz[top]                                   # (n, K, C), columns by class id
    k_rows = k_rows.gather(2, order[:, None, :].expand(-1, k_max, -1))
    y_sorted = y.gather(1, order)
    M = y_top[:, :, None] - y_sorted[:, None, :] - eps * k_rows    # (n, K, C), columns by rank
    suffix = M.flip(2).cummin(2).values.flip(2)                    # min over ranks >= r
    S = suffix[:, :, 1:k_max + 1]                                  # (n, l, k): min over i outside T_k
    rows = torch.arange(k_max, device=y.device)
    S = S.masked_fill(rows[:, None] >= rows[None, :] + 1, float("inf"))   # only l <= k
    m = S.min(1).values                                            # (n, k_max)
    if member is not None:
        in_group = member[:, top].permute(1, 0, 2).long().cumprod(2).bool()  # (n, groups, k): T_k inside the group
        m = m.masked_fill(~in_group.any(1), float("-inf"))
    return m, order


def as_gloro(model: nn.Module, eps: float) -> GloroNet | None:
    """``model`` as a GloRo net certifying at L2 radius ``eps``: itself if it is one (with its own radius), else a
    :class:`GloroNet` around it (eval mode) when every layer has a bound here, else None — a residual network
    (RobustBench's WideResNets) or batch norm has no layer-wise bound in this module, so no certificate is claimed."""
    if isinstance(model, GloroNet):
        return model
    try:
        return GloroNet(model, eps=eps).eval()
    except UnknownLayer:
        return None


class GloroNet(nn.Module):
    """A GloRo wrapper around an ``nn.Sequential`` whose last layer is ``nn.Linear``.

    relaxation: ``"local"`` (standard local robustness), ``"rtk"`` (relaxed top-K, with
    ``K``) or ``"affinity"`` (with ``groups``: lists of class ids; a class may sit in
    several groups; a class in no group is its own group). Threat model: L2 ball of radius eps.
    """

    def __init__(self, model: nn.Sequential, eps: float, relaxation: str = "local", K: int = 1,
                 groups: Sequence[Sequence[int]] | None = None, power_iters: int = 5):
        super().__init__()
        if not isinstance(model, nn.Sequential) or not len(model) or not isinstance(model[-1], nn.Linear):
            raise UnknownLayer("GloroNet needs an nn.Sequential ending in nn.Linear")     # a TypeError
        check.choice("relaxation", relaxation, RELAXATIONS)
        check.radius("eps", eps)
        self.model, self.eps, self.relaxation, self.power_iters = model, float(eps), relaxation, power_iters
        C = model[-1].out_features
        if relaxation == "rtk":
            check.top_k("K", K, C)
        if relaxation == "affinity" and groups is None:
            raise check.InvalidArgument("affinity robustness needs groups (lists of class ids)")
        if groups is not None and relaxation != "affinity":
            check.class_groups("groups", groups, C)      # checked even where unused: a typo is never silent
        member = _membership(groups, C) if relaxation == "affinity" else None
        self.K = K if relaxation == "rtk" else (int(member.sum(1).max()) if member is not None else 1)
        self.register_buffer("member", member if member is not None else torch.zeros(0, C, dtype=torch.bool))
        self.body = list(model[:-1])
        self.kinds = [check_layer(layer) for layer in self.body]       # refuses unknown layers now
        self._shapes: list[tuple[int, ...]] | None = None
        self._sound: tuple[str, torch.Tensor] | None = None

    # -- shapes and iterates
    def _ensure_shapes(self, x: torch.Tensor) -> None:
        if self._shapes is not None:
            if self._shapes and tuple(x.shape[1:]) != self._shapes[0]:
                raise check.InvalidArgument(f"x has inputs of shape {tuple(x.shape[1:])}; this network takes "
                                            f"{self._shapes[0]}")
            return
        shapes, h = [], x[:1].detach().to(self.model[-1].weight.device)
        try:
            with torch.no_grad():
                for layer in self.body:
                    shapes.append(tuple(h.shape[1:]))
                    h = layer(h)
                self.model[-1](h)
        except RuntimeError as err:
            raise check.InvalidArgument(f"x has inputs of shape {tuple(x.shape[1:])}, which this network cannot "
                                        f"take ({str(err).splitlines()[0]})") from None
        self._shapes = shapes
        gen = torch.Generator().manual_seed(0)
        for i, (kind, shape) in enumerate(zip(self.kinds, shapes)):
            if kind == "linear":
                v = torch.randn((1, *shape), generator=gen)
                self.register_buffer(f"_iterate{i}", (v / v.norm()).to(h.device), persistent=False)

    def trace(self, input_shape: Sequence[int]) -> "GloroNet":
        """Record the layer input shapes (needed by the conv norms) from one dummy input."""
        weight = self.model[-1].weight
        self._ensure_shapes(torch.zeros((1, *input_shape), dtype=weight.dtype, device=weight.device))
        return self

    def _linear_layers(self):
        if self._shapes is None:
            raise RuntimeError("layer shapes unknown: call net.trace(input_shape) or certify an input first")
        return [(i, layer, shape) for i, (layer, kind, shape) in enumerate(zip(self.body, self.kinds, self._shapes))
                if kind == "linear"]

    def _refuse_training_dropout(self) -> None:
        for layer, kind in zip(self.body, self.kinds):
            if kind == "dropout" and layer.training and layer.p > 0:
                raise UnknownLayer(f"{layer} in training mode scales activations by 1/(1-p) = {1 / (1 - layer.p):.3g}: "
                                   "not 1-Lipschitz, so the GloRo bound does not hold; use dropout only in eval mode")

    def lipschitz_sub(self, sound: bool) -> torch.Tensor:
        """Product of the per-layer bounds of every layer before the last one.

        ``sound=False``: warm-started power iteration (``power_iters`` steps, differentiable in the
        weights, float32) — for training. ``sound=True``: exact / upper-bound norms, float64, rounded up.
        """
        self._refuse_training_dropout()
        if sound:
            total = torch.ones((), dtype=torch.float64)
            for _, layer, shape in self._linear_layers():
                total = _round_up(total * exact_sigma(layer, shape), SVD_ROUND_UP)
            return total
        total = torch.ones((), device=self.model[-1].weight.device)
        for i, layer, _ in self._linear_layers():
            v = power_iteration(layer, getattr(self, f"_iterate{i}"), self.power_iters)
            setattr(self, f"_iterate{i}", v)
            total = total * sigma_from_iterate(layer, v)
        return total

    def converge(self, tol: float = 1e-7, max_iters: int = 5000) -> list[float]:
        """Run power iteration until every layer's estimate changes by < tol (relative); returns them."""
        values = []
        for i, layer, _ in self._linear_layers():
            prev = 0.0
            for _ in range(max_iters):
                v = power_iteration(layer, getattr(self, f"_iterate{i}"), 10)
                setattr(self, f"_iterate{i}", v)
                with torch.no_grad():
                    cur = float(sigma_from_iterate(layer, v))
                if abs(cur - prev) <= tol * cur:
                    break
                prev = cur
            values.append(cur)
        return values

    def pair_constants(self, sound: bool) -> torch.Tensor:
        """K[j, i] = L_sub * ||w_j - w_i||_2: a Lipschitz bound of the logit difference y_j - y_i.

        Sound constants are float64 on the CPU, every factor rounded up; training constants are
        differentiable float32 on the model's device.
        """
        w = self.model[-1].weight
        if sound:
            pair = _round_up(pairwise_distances(w.cpu(), 2), SVD_ROUND_UP)
            return _round_up(self.lipschitz_sub(True) * pair, SVD_ROUND_UP)
        diff = w[:, None, :] - w[None, :, :]
        pair = diff.pow(2).sum(-1).clamp_min(1e-30).sqrt() * (1 - torch.eye(len(w), device=w.device))
        return self.lipschitz_sub(False) * pair

    def sound_constants(self) -> torch.Tensor:
        """The pair constants K computed soundly from the current weights (recomputed when the weights change)."""
        with torch.no_grad():
            stamp = model_fingerprint(self.model)
            if self._sound is None or self._sound[0] != stamp:
                self._sound = (stamp, self.pair_constants(sound=True))
            return self._sound[1]

    # -- outputs
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def margins(self, x: torch.Tensor, eps: float | None = None, constants: torch.Tensor | None = None):
        """Logits, pair Lipschitz constants, the relaxation margins m_k and the class order.

        In training mode the constants come from power iteration (differentiable, float32); in eval
        mode they are sound and everything after the logits is computed in float64.
        """
        self._ensure_shapes(x)
        eps = self.eps if eps is None else check.radius("eps", eps)
        y = self.model(x)
        member = self.member if self.relaxation == "affinity" else None
        if self.training and constants is None:
            lipschitz = self.pair_constants(sound=False)
            m, order = relaxation_margins(y, lipschitz, eps, self.K, member)
            return y, lipschitz, m, order
        lipschitz = (self.sound_constants() if constants is None else constants).to(y.device, torch.float64)
        m, order = relaxation_margins(y.double(), lipschitz, eps, self.K,
                                      None if member is None else member.to(y.device))
        return y, lipschitz, m, order

    def augmented(self, x: torch.Tensor, eps: float | None = None, constants: torch.Tensor | None = None) -> torch.Tensor:
        """[y, y_bot] with y_bot = max(y) - max_k m_k: bottom wins iff no k <= K is certified
        (on an exact tie the bottom logit equals the top one; :meth:`certify` never certifies ties)."""
        y, _, m, _ = self.margins(x, eps, constants)
        bottom = y.max(1).values - m.max(1).values.to(y.dtype)
        return torch.cat([y, bottom[:, None]], 1)

    @torch.no_grad()
    def certify(self, x: torch.Tensor, eps: float | None = None, batch_size: int = 4096) -> Certificate:
        """Certificates for a batch (sound constants computed once, then one forward pass per batch)."""
        check.batch("x", x)
        dev = model_device(self)
        self._ensure_shapes(x)
        parts = []
        with eval_mode(self):
            for s in batches(len(x), batch_size):
                parts.append(self._certify_batch(x[s].to(dev), eps))
        return Certificate(*(torch.cat([t.to(x.device) for t in p]) for p in zip(*parts)))

    def _certify_batch(self, x: torch.Tensor, eps: float | None):
        """(top class, certified, certified set, set size, radius) for one batch, in eval mode."""
        y, lipschitz, m, order = self.margins(x, eps)
        slack = LOGIT_SLACK * (1 + y.abs().amax(1, keepdim=True).double())
        ok = m > slack                                          # strictly, with room for float32 rounding
        size = torch.where(ok.any(1), ok.shape[1] - ok.flip(1).long().argmax(1), torch.zeros_like(order[:, 0]))
        ranks = torch.arange(y.shape[1], device=y.device)[None, :]
        in_set = torch.zeros_like(y, dtype=torch.bool).scatter(1, order, ranks < size[:, None])
        j = order[:, 0]
        gap = y.double().gather(1, j[:, None]) - y.double() - slack
        ratio = torch.where(gap <= 0, torch.zeros_like(gap), gap / lipschitz[j])
        radius = ratio.masked_fill(ranks == j[:, None], float("inf")).min(1).values
        return j, size > 0, in_set, size, radius


def as_relaxation(net: GloroNet, relaxation: str, K: int = 1, groups=None) -> GloroNet:
    """The same trained network certified under another guarantee (weights shared)."""
    out = GloroNet(net.model, net.eps, relaxation, K, groups).eval()
    out._shapes = net._shapes
    return out


# --------------------------------------------------------------------------- affinity groups
def cifar100_superclasses() -> list[list[int]]:
    """The 20 CIFAR-100 superclasses as lists of fine-label ids (shipped as data in the library)."""
    spec = json.loads(resources.files("robustbook").joinpath("data_files/cifar100_superclasses.json").read_text())
    index = {name: i for i, name in enumerate(spec["fine_labels"])}
    return [[index[name] for name in members] for members in spec["superclasses"].values()]


def derive_groups(net: GloroNet, x: torch.Tensor, eps: float, count: int = 4) -> list[tuple[list[int], int, str]]:
    """Affinity groups read off a relaxed net: the class sets of at least two classes it certifies most
    often on ``x`` (use training and validation data, never the test split), with their counts.

    When the net certifies fewer than ``count`` such sets, the list is completed with the pairs of top-2
    classes it predicts most often (uncertified). Each entry says which source it came from.
    """
    check.number("count", count, low=1, integer=True)
    cert = net.certify(x, eps=eps)
    sets = Counter(tuple(torch.nonzero(s).flatten().tolist()) for s, ok in zip(cert.certified_set, cert.certified)
                   if ok and int(s.sum()) >= 2)
    out = [(list(s), n, "certified set") for s, n in sets.most_common(count)]
    if len(out) < count:
        top2 = predict_logits(net, x).topk(2, dim=1).indices.sort(dim=1).values
        pairs = Counter(tuple(p) for p in top2.tolist())
        for p, n in pairs.most_common():
            if len(out) >= count:
                break
            if not any(set(p) <= set(g) for g, _, _ in out):
                out.append((list(p), n, "top-2 pair"))
    return out


# --------------------------------------------------------------------------- soundness by attack
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
    certified set); a value >= 0 after the attack would be a soundness violation. The result is cached
    (:func:`robustbook.runtime.memo`, kind ``soundness``), keyed by the net and its relaxation, the inputs, the
    radius, the attack's settings and the code.
    """
    member = None if net.member is None else net.member.tolist()
    key = [model_fingerprint(net), net.relaxation, net.K, member, tensor_fingerprint(x), float(eps), steps, restarts]
    return memo("soundness", key, lambda: _attack_certificates(net, x, eps, steps, restarts), ("certify", "attacks"))


def _attack_certificates(net: GloroNet, x: torch.Tensor, eps: float, steps: int, restarts: int) -> dict:
    cert = net.certify(x, eps=eps)
    dev = model_device(net)
    xs, mask = x[cert.certified].to(dev), cert.certified_set[cert.certified].to(dev)
    if len(xs) == 0:
        return {"certified_points_attacked": 0, "soundness_violations": 0, "closest_gap": float("nan")}
    x_adv = pgd(net, xs, mask, eps, "L2", steps=steps, restarts=restarts, loss_fn=set_change(mask))
    with torch.no_grad():
        gap = set_change(mask)(net(x_adv), None)
    return {"certified_points_attacked": len(xs), "soundness_violations": int((gap >= 0).sum()),
            "closest_gap": float(gap.max())}
