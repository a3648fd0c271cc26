"""Stand-in data and checkpoints in the real formats, for running the colab and paper profiles offline.

Every file is written the way the real one is published, so the library's real loading code reads it:
MNIST / Fashion-MNIST idx files, CIFAR-10 / CIFAR-100 python pickles with their ``batches.meta`` / ``meta``,
CIFAR-10.1 ``.npy`` arrays, and RobustBench checkpoints of each named model's real architecture (random
weights) where RobustBench looks for them. The pixels and labels are random; the CIFAR pickles' checksums
therefore differ from the published ones, which the library accepts only under its test switch
(``robustbook.data.UNVERIFIED``).
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import torch

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def idx(folder: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """The four idx files of MNIST / Fashion-MNIST (uncompressed, as torchvision keeps them in ``raw/``)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def cifar10(root: Path, per_batch: int, n_test: int, seed: int = 0) -> None:
    """``cifar-10-batches-py/``: five training batches, the test batch and ``batches.meta``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in batches:
        n = n_test if name == "test_batch" else per_batch
        _pickle(folder / name, {"batch_label": name, "labels": [int(i % 9) for i in range(n)],   # see robustbench()
                                "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                                "filenames": [f"{name}_{i}.png" for i in range(n)]})
    _pickle(folder / "batches.meta", {"label_names": CIFAR10_NAMES, "num_cases_per_batch": per_batch,
                                      "num_vis": 3072})


def cifar100(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """``cifar-100-python/``: ``train``, ``test`` and ``meta`` with the real fine and coarse label names."""
    from importlib import resources
    import json

    spec = json.loads(resources.files("robustbook").joinpath("data_files/cifar100_superclasses.json").read_text())
    fine = spec["fine_labels"]
    coarse = list(spec["superclasses"])
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        labels = [int(i % 100) for i in range(n)]
        _pickle(folder / name, {"filenames": [f"{name}_{i}.png" for i in range(n)], "batch_label": name,
                                "fine_labels": labels, "coarse_labels": [0] * n,
                                "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)})
    _pickle(folder / "meta", {"fine_label_names": fine, "coarse_label_names": coarse})


def cifar10_1(root: Path, n: int, seed: int = 0) -> None:
    """CIFAR-10.1 v6 as published: ``cifar10.1/cifar10.1_v6_data.npy`` (uint8, N x 32 x 32 x 3) and labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar10.1"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "cifar10.1_v6_data.npy", rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "cifar10.1_v6_labels.npy", (np.arange(n) % 9).astype(np.int64))


def robustbench(model_dir: Path, names, dataset: str = "cifar10", threat_model: str = "Linf") -> list[Path]:
    """A checkpoint of each named RobustBench model's real architecture where RobustBench looks for it, with the
    random weights of its initialisation (seeded): its answers and logit margins vary with the input, as a real
    model's do (a model that answered one class everywhere would tie every margin and leave Kendall's tau
    undefined). The shrunk runs cut AutoAttack's iterations (``autoattack_iterations``), so attacking these models
    takes seconds for the small ones; the WideResNets too large for a CPU are skipped there (``test_profiles``).
    Existing files are kept (they are large)."""
    from robustbook.models import robustbench_architecture, robustbench_checkpoint

    written = []
    for name in names:
        path = robustbench_checkpoint(name, dataset, threat_model, model_dir)
        if not path.is_file():
            torch.manual_seed(0)
            path.parent.mkdir(parents=True, exist_ok=True)
            model = robustbench_architecture(name, dataset, threat_model)
            torch.save(model.state_dict(), path)
        written.append(path)
    return written
