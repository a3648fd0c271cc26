"""Shifted test sets: common corruptions at five severities, attacked sets, natural shift (CIFAR-10.1).

Corruptions for small grayscale images (the 8x8 digits, 28x28 Fashion-MNIST) are implemented here in
torch, with the severity constants of CIFAR-10-C (Hendrycks & Dietterich, 2019) where they transfer and
scaled to small images where they do not (elastic, pixelate).  For RGB images of at least 32x32 (the paper
profile), :func:`corrupt_rgb` calls the ``imagecorruptions`` package (ImageNet-C's severities,
harsher than CIFAR-10-C's at 32x32).  Every corruption is seeded: the same call gives the same images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

SEVERITIES = (1, 2, 3, 4, 5)


def gaussian_noise(x, severity, gen):
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return x + sigma * torch.randn(x.shape, generator=gen)


def shot_noise(x, severity, gen):
    lam = (500, 250, 100, 75, 50)[severity - 1]
    return torch.poisson(x * lam, generator=gen) / lam


def impulse_noise(x, severity, gen):
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    u = torch.rand(x.shape, generator=gen)
    salt = torch.rand(x.shape, generator=gen) < 0.5
    out = x.clone()
    hit = u < amount
    out[hit] = salt[hit].float()
    return out


def blur(x, severity, gen):
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[severity - 1]
    return gaussian_blur(x, kernel_size=[5, 5], sigma=[sigma, sigma])


def contrast(x, severity, gen):
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = x.mean(dim=(-1, -2, -3), keepdim=True)
    return (x - mean) * c + mean


def brightness(x, severity, gen):
    return x + (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]


def elastic(x, severity, gen):
    """A smooth random displacement field (alpha pixels, smoothed with a Gaussian), sampled bilinearly."""
    alpha = (0.4, 0.6, 0.8, 1.0, 1.2)[severity - 1]
    n, _, h, w = x.shape
    field = torch.rand((n, 2, h, w), generator=gen) * 2 - 1
    field = gaussian_blur(field, kernel_size=[5, 5], sigma=[1.5, 1.5])
    field = field / field.flatten(1).abs().amax(1).clamp_min(1e-6).view(-1, 1, 1, 1) * alpha
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xs, ys], -1)[None] + field.permute(0, 2, 3, 1) * torch.tensor([2 / (w - 1), 2 / (h - 1)])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def pixelate(x, severity, gen):
    """Render at a lower resolution (area downsampling) and scale back bilinearly.

    At 8x8, nearest-neighbour upsampling (the usual "pixelate") makes severity non-monotone: sizes
    that divide 8 give aligned blocks, the others misaligned ones; bilinear upsampling does not.
    """
    factor = (0.75, 0.625, 0.5, 0.375, 0.25)[severity - 1]
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


CORRUPTIONS: dict[str, Callable] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "gaussian_blur": blur, "contrast": contrast, "brightness": brightness, "elastic": elastic, "pixelate": pixelate,
}


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``x`` (N, C, H, W in [0, 1]) under corruption ``name`` at ``severity`` 1..5, clipped to [0, 1]."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; valid choices: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}; got {severity!r}")
    gen = torch.Generator().manual_seed(seed * 1000 + severity)
    return CORRUPTIONS[name](x.detach().cpu(), severity, gen).clamp(0, 1).to(x.device)


# imagecorruptions 1.1.2 fails on numpy 2.4 / scikit-image 0.26 for these three (checked; see the reference notes)
RGB_BROKEN = ("glass_blur", "gaussian_blur", "fog")


def rgb_corruptions() -> list[str]:
    from imagecorruptions import get_corruption_names

    return [c for c in get_corruption_names("all") if c not in RGB_BROKEN]


def corrupt_rgb(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """CIFAR-style RGB images (N, 3, H >= 32, W >= 32) through ``imagecorruptions.corrupt``."""
    try:
        from imagecorruptions import corrupt as ic_corrupt
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("the paper profile's corruptions need imagecorruptions (`make` installs it)") from err
    if x.shape[1] != 3 or min(x.shape[-2:]) < 32:
        raise ValueError("imagecorruptions needs RGB images of at least 32x32; use corrupt() for small grayscale images")
    if name not in rgb_corruptions():
        raise ValueError(f"unknown or broken corruption {name!r}; valid choices: {', '.join(rgb_corruptions())}")
    np.random.seed(seed * 1000 + severity)           # imagecorruptions draws from numpy's global generator
    images = (x.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    out = np.stack([np.asarray(ic_corrupt(img, corruption_name=name, severity=severity)) for img in images])
    return torch.from_numpy(out.astype(np.float32) / 255).permute(0, 3, 1, 2)


CIFAR10_1_FILES = ("cifar10.1_v6_data.npy", "cifar10.1_v6_labels.npy")


CIFAR10_1_URL = "https://raw.githubusercontent.com/modestyachts/CIFAR-10.1/master/datasets/"


def load_cifar10_1(root: str | Path | None = None, download: bool = True,
                   timeout: float = 20.0) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10.1 v6 (Recht et al., 2019): 2,000 images, 200 per class, as (N, 3, 32, 32) in [0, 1].

    Layout: ``<root>/cifar10.1/cifar10.1_v6_data.npy`` (uint8, 2000x32x32x3) and
    ``cifar10.1_v6_labels.npy`` (int, 2000), as published in the CIFAR-10.1 repository; downloaded from there
    when missing (atomically), and offline the error names the files and the folder.
    """
    import urllib.request

    from .data import DataNotAvailable
    from .runtime import atomic_write, data_dir

    folder = Path(root or data_dir()) / "cifar10.1"
    missing = [f for f in CIFAR10_1_FILES if not (folder / f).is_file()]
    if missing and download:
        try:
            for name in missing:
                with urllib.request.urlopen(CIFAR10_1_URL + name, timeout=timeout) as response:
                    blob = response.read()
                atomic_write(folder / name, lambda tmp, b=blob: tmp.write_bytes(b))
            missing = []
        except OSError as err:
            reason = f"download failed ({type(err).__name__}: {err})"
        else:
            reason = ""
    else:
        reason = "not on disk"
    if missing:
        raise DataNotAvailable(f"CIFAR-10.1 v6 is not available: {reason}. Put these files into {folder}: "
                               f"{', '.join(CIFAR10_1_FILES)} (from the CIFAR-10.1 repository, datasets/ folder).")
    data = np.load(folder / CIFAR10_1_FILES[0])
    labels = np.load(folder / CIFAR10_1_FILES[1])
    if data.shape[1:] != (32, 32, 3) or len(data) != len(labels):
        raise ValueError(f"unexpected CIFAR-10.1 arrays: {data.shape}, {labels.shape}")
    return torch.from_numpy(data).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(labels.astype(np.int64))
