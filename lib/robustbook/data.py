"""Datasets by name.

``load_dataset(name, **options)`` returns a :class:`Data` bundle with fixed
train / validation / test tensors, pixels in [0, 1] and images shaped (N, C, H, W).

``digits`` and ``blobs`` need no download.  ``fashion_mnist`` (Zalando's Fashion-MNIST, the
published book's images) is read from ``ROBUSTBOOK_DATA``, else from the folder of Debian's
package ``dataset-fashion-mnist``, else downloaded by torchvision.  ``mnist``, ``cifar10`` and
``cifar100`` come from torchvision; offline, a missing download fails within seconds and the
error names the folder and the files to put there.

``load_dataset(name, points=[train, val, test])`` keeps fixed random subsets of the splits (0: the
whole split), the same for every chapter, so that chapters share each other's cached models.
"""
from __future__ import annotations

import gzip
import shutil
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


def load_synthetic(seed: int = 0) -> Data:
    """Merkli et al.'s Figure 1 (chapters 4 and 6): three 2-D Gaussian classes of 485, 499 and 16 points, the small
    class 2 close to class 1 — where a robust model is robust *and wrong*. The zoo's ``synthetic_*`` recipes
    train on it; every seed draws a new sample."""
    data = load_blobs(means=[(0.25, 0.25), (0.75, 0.75), (0.55, 0.80)],
                      stds=[(0.05, 0.05), (0.05, 0.05), (0.0167, 0.025)], counts=[485, 499, 16], seed=seed)
    data.name = "synthetic"
    return data


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
    "fashion_mnist": _Download(
        "FashionMNIST", "FashionMNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", 10),
    "cifar10": _Download(
        "CIFAR10", "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
         "test_batch", "batches.meta"),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", 10),
    "cifar100": _Download(
        "CIFAR100", "cifar-100-python", ("train", "test", "meta"),
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", 100),
}


# Debian's package dataset-fashion-mnist installs the four gzipped idx files here
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _missing_message(name: str, root: Path, spec: _Download, reason: str) -> str:
    folder = root / spec.folder
    files = ", ".join(spec.files)
    debian = (f"On Debian/Ubuntu: `sudo apt-get install dataset-fashion-mnist` puts them (gzipped) in "
              f"{DEBIAN_FASHION_MNIST}, where the book finds them.\n" if name == "fashion_mnist" else "")
    return (
        f"Dataset {name!r} is not available: {reason}.\n{debian}"
        f"Put these files into {folder}: {files}\n"
        f"(download {spec.url} on a machine with internet and unpack it into {root}),\n"
        f"or set ROBUSTBOOK_DATA to the folder that already holds them."
    )


def _from_debian(name: str, root: Path) -> None:
    """Gunzip the Debian package's Fashion-MNIST files into ``root``'s torchvision layout (once, atomically)."""
    if name != "fashion_mnist" or not DEBIAN_FASHION_MNIST.is_dir():
        return
    spec = _TORCHVISION[name]
    folder = root / spec.folder
    for file in spec.files:
        source, target = DEBIAN_FASHION_MNIST / f"{file}.gz", folder / file
        if target.is_file() or not source.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{file}.partial")
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(target)


# A test switch, never a fallback: stand-in files in the real formats (the tests' CIFAR pickles) differ from the
# published ones in their checksums; with this variable set to 1 torchvision's checksum checks are skipped (the
# files must still exist and parse), and every load says so in the log.
UNVERIFIED = "ROBUSTBOOK_UNVERIFIED_DATA"


def _without_checksums(cls):
    """``cls`` with its md5 sums removed (torchvision then checks only that the files exist)."""
    import logging

    fields = {k: [[f, None] for f, _ in getattr(cls, k)] for k in ("train_list", "test_list") if hasattr(cls, k)}
    if hasattr(cls, "meta"):
        fields["meta"] = {**cls.meta, "md5": None}
    if not fields:          # MNIST and Fashion-MNIST: torchvision checks only that the files exist
        return cls
    logging.getLogger("robustbook").warning("%s=1: %s files are read without checking their checksums (tests only)",
                                            UNVERIFIED, cls.__name__)
    return type(cls.__name__, (cls,), fields)     # the same name: torchvision derives folders from it


def _torchvision_split(name: str, root: Path, train: bool, download: bool, timeout: float):
    import os

    import torchvision

    spec = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, spec.cls_name)
    if os.environ.get(UNVERIFIED) == "1":
        cls = _without_checksums(cls)
    _from_debian(name, root)
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
    val_size = min(val_size, len(ytr) // 10)      # 5,000 of the real sets; a tenth of a small stand-in
    val, tr = perm[:val_size], perm[val_size:]
    classes = list(getattr(train, "classes", []))
    return Data(name, xtr[tr], ytr[tr], xtr[val], ytr[val], xte, yte, _TORCHVISION[name].num_classes, classes)


# --------------------------------------------------------------------------- registry
DATASETS: dict[str, Callable[..., Data]] = {
    "blobs": load_blobs,
    "synthetic": load_synthetic,
    "digits": load_digits,
    "fashion_mnist": lambda **kw: _load_torchvision("fashion_mnist", **kw),
    "mnist": lambda **kw: _load_torchvision("mnist", **kw),
    "cifar10": lambda **kw: _load_torchvision("cifar10", **kw),
    "cifar100": lambda **kw: _load_torchvision("cifar100", **kw),
}


# What each named image dataset looks like, known before loading it (for checking parameters).
DATASET_INFO: dict[str, tuple[int, tuple[int, ...]]] = {
    "digits": (10, (1, 8, 8)), "fashion_mnist": (10, (1, 28, 28)), "mnist": (10, (1, 28, 28)),
    "cifar10": (10, (3, 32, 32)), "cifar100": (100, (3, 32, 32)),
}
# Points in each split (train, validation, test), known before loading (for checking parameters).
SPLIT_SIZES: dict[str, tuple[int, int, int]] = {
    "digits": (1077, 180, 540), "fashion_mnist": (55000, 5000, 10000), "mnist": (55000, 5000, 10000),
    "cifar10": (45000, 5000, 10000), "cifar100": (45000, 5000, 10000),
}

# Fashion-MNIST's classes, and the groups of classes a person would call "the same kind of thing":
# the affinity groups of chapter 3 (as CIFAR-100's superclasses are in Leino & Fredrikson's paper).
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
FASHION_MNIST_GROUPS = {"tops": [0, 2, 3, 4, 6], "footwear": [5, 7, 9], "trousers": [1], "bags": [8]}


def load_dataset(name: str, points: Sequence[int] | None = None, **options) -> Data:
    """Load a dataset by name; see :data:`DATASETS` for the choices.

    ``points = [train, val, test]`` keeps a fixed random subset of each split (seed 0, the same in every
    chapter and process; 0 keeps the whole split). Asking for more points than a split has is an error.
    """
    from .validate import choice

    data = DATASETS[choice("dataset", name, DATASETS)](**options)
    return data if points is None else shrink(data, points)


def shrink(data: Data, points: Sequence[int]) -> Data:
    """``data`` with fixed random subsets of ``points = [train, val, test]`` points (0: the whole split)."""
    from .validate import InvalidArgument

    if len(points) != 3 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 for n in points):
        raise InvalidArgument(f"points must be [train, val, test] counts >= 0 (0: the whole split); got {points!r}")
    splits = {}
    for split, n in zip(("train", "val", "test"), points):
        x, y = data.split(split)
        if n > len(y):
            raise InvalidArgument(f"points: {n} {split} points asked, but {data.name}'s {split} split has {len(y)}")
        splits[split] = subset(x, y, int(n) or None, seed=0)
    (xtr, ytr), (xva, yva), (xte, yte) = splits["train"], splits["val"], splits["test"]
    return Data(data.name, xtr, ytr, xva, yva, xte, yte, data.num_classes, data.class_names)


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int = 0):
    """The first ``n`` points of a fixed random permutation (all points when n is None)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        from .validate import InvalidArgument

        raise InvalidArgument(f"n must be a positive number of points or None; got {n!r}")
    if n is None or n >= len(y):
        return x, y
    n = int(n)
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


LABELS = {"blobs": "the 2-D blobs", "synthetic": "the synthetic example", "digits": "the 8x8 digits", "fashion_mnist": "Fashion-MNIST", "mnist": "MNIST",
          "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def label(name: str) -> str:
    """How the book names a dataset in a sentence (``"Fashion-MNIST"``, ``"the 8x8 digits"``)."""
    return LABELS.get(name, name)
