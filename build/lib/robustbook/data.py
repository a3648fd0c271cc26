"""Datasets by name.

``load_dataset(name, **options)`` returns a :class:`Data` bundle with fixed
train / validation / test tensors, pixels in [0, 1] and images shaped (N, C, H, W).

``digits`` and ``blobs`` need no download.  ``mnist``, ``cifar10`` and ``cifar100`` come
from torchvision; offline, a missing download fails within seconds and the error names
the folder and the files to put there.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .runtime import data_dir


class DataNotAvailable(FileNotFoundError):
    """A dataset is not on disk and could not be downloaded."""


@dataclass
class Data:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    indices: dict[str, np.ndarray] = field(default_factory=dict)   # rows of the source data per split, if fixed

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the split ``train``, ``val`` or ``test``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; valid: train, val, test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def sizes(self) -> dict[str, int]:
        return {s: len(self.split(s)[1]) for s in ("train", "val", "test")}


# --------------------------------------------------------------------------- blobs
def load_blobs(
    means: Sequence[Sequence[float]] = ((0.25, 0.25), (0.75, 0.75)),
    stds: Sequence[Sequence[float]] = ((0.05, 0.05), (0.05, 0.05)),
    counts: Sequence[int] = (200, 200),
    seed: int = 0,
    clip: bool = True,
) -> Data:
    """Gaussian classes in 2-D with diagonal covariances.

    Each split draws ``counts[c]`` points of class ``c`` with its own seed (train:
    ``seed``, validation: ``seed + 1``, test: ``seed + 2``).  Points are clipped to the
    unit square, the data box of every threat model in this book.
    """
    means, stds = np.asarray(means, float), np.asarray(stds, float)
    if means.shape != stds.shape or means.ndim != 2 or len(counts) != len(means):
        raise ValueError("blobs: means, stds and counts must describe the same classes")

    def draw(s: int):
        rng = np.random.default_rng(s)
        xs = [rng.normal(m, sd, size=(n, means.shape[1])) for m, sd, n in zip(means, stds, counts)]
        x = np.concatenate(xs)
        y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
        if clip:
            x = np.clip(x, 0.0, 1.0)
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)

    (xtr, ytr), (xva, yva), (xte, yte) = draw(seed), draw(seed + 1), draw(seed + 2)
    return Data("blobs", xtr, ytr, xva, yva, xte, yte, len(counts), [str(c) for c in range(len(counts))])


# --------------------------------------------------------------------------- digits
def load_digits(seed: int = 0, test_fraction: float = 0.3, val_fraction: float = 0.1) -> Data:
    """scikit-learn's 8x8 handwritten digits (1,797 images, shipped with the package).

    A fixed stratified split: 30% test, 10% validation, the rest training.  Pixels are
    divided by 16 into [0, 1]; images are (N, 1, 8, 8) so MLPs and CNNs both use them.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    train, val = train_test_split(
        rest, test_size=val_fraction / (1 - test_fraction), stratify=y[rest], random_state=seed
    )
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return Data(
        "digits", t(x[train]), t(y[train]), t(x[val]), t(y[val]), t(x[test]), t(y[test]),
        10, [str(i) for i in range(10)], {"train": train, "val": val, "test": test},
    )


# --------------------------------------------------------------------------- torchvision
@dataclass(frozen=True)
class _Download:
    cls_name: str
    folder: str
    files: tuple[str, ...]
    url: str
    num_classes: int


_TORCHVISION = {
    "mnist": _Download(
        "MNIST", "MNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        "https://ossci-datasets.s3.amazonaws.com/mnist/", 10),
    "cifar10": _Download(
        "CIFAR10", "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
         "test_batch", "batches.meta"),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", 10),
    "cifar100": _Download(
        "CIFAR100", "cifar-100-python", ("train", "test", "meta"),
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", 100),
}


def _missing_message(name: str, root: Path, spec: _Download, reason: str) -> str:
    folder = root / spec.folder
    files = ", ".join(spec.files)
    return (
        f"Dataset {name!r} is not available: {reason}.\n"
        f"Put these files into {folder}: {files}\n"
        f"(download {spec.url} on a machine with internet and unpack it into {root}),\n"
        f"or set ROBUSTBOOK_DATA to the folder that already holds them."
    )


def _torchvision_split(name: str, root: Path, train: bool, download: bool, timeout: float):
    import torchvision

    spec = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, spec.cls_name)
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError as missing:
        if not download:
            raise DataNotAvailable(_missing_message(name, root, spec, str(missing))) from None
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return cls(str(root), train=train, download=True)
    except Exception as err:  # no network, refused connection, bad checksum...
        raise DataNotAvailable(
            _missing_message(name, root, spec, f"download failed ({type(err).__name__}: {err})")
        ) from None
    finally:
        socket.setdefaulttimeout(old)


def _load_torchvision(
    name: str, root: str | Path | None = None, download: bool = True, val_size: int = 5000,
    seed: int = 0, timeout: float = 10.0,
) -> Data:
    root = Path(root) if root else data_dir()
    train = _torchvision_split(name, root, True, download, timeout)
    test = _torchvision_split(name, root, False, download, timeout)

    def tensors(ds):
        x = torch.as_tensor(np.asarray(ds.data))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        return x.float().div(255.0), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)

    xtr, ytr = tensors(train)
    xte, yte = tensors(test)
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(seed))
    val, tr = perm[:val_size], perm[val_size:]
    classes = list(getattr(train, "classes", []))
    return Data(name, xtr[tr], ytr[tr], xtr[val], ytr[val], xte, yte, _TORCHVISION[name].num_classes, classes)


# --------------------------------------------------------------------------- registry
DATASETS: dict[str, Callable[..., Data]] = {
    "blobs": load_blobs,
    "digits": load_digits,
    "mnist": lambda **kw: _load_torchvision("mnist", **kw),
    "cifar10": lambda **kw: _load_torchvision("cifar10", **kw),
    "cifar100": lambda **kw: _load_torchvision("cifar100", **kw),
}


# What each named image dataset looks like, known before loading it (for checking parameters).
DATASET_INFO: dict[str, tuple[int, tuple[int, ...]]] = {
    "digits": (10, (1, 8, 8)), "mnist": (10, (1, 28, 28)), "cifar10": (10, (3, 32, 32)), "cifar100": (100, (3, 32, 32)),
}


def load_dataset(name: str, **options) -> Data:
    """Load a dataset by name; see :data:`DATASETS` for the choices."""
    from .validate import choice

    return DATASETS[choice("dataset", name, DATASETS)](**options)


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int = 0):
    """The first ``n`` points of a fixed random permutation (all points when n is None)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        from .validate import InvalidArgument

        raise InvalidArgument(f"n must be a positive number of points or None; got {n!r}")
    if n is None or n >= len(y):
        return x, y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]
