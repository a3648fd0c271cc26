"""Datasets: fixed splits, the data box, and offline behaviour simulated (never assumed)."""
import time

import pytest
import torch

from robustbook.data import DataNotAvailable, load_blobs, load_dataset, subset


def test_digits_split_is_fixed_stratified_and_in_the_box(digits):
    assert digits.sizes() == {"train": 1077, "val": 180, "test": 540}
    assert digits.x_train.shape[1:] == (1, 8, 8) and digits.num_classes == 10
    for split in ("train", "val", "test"):
        x, y = digits.split(split)
        assert x.dtype == torch.float32 and y.dtype == torch.long
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        counts = torch.bincount(y, minlength=10).float() / len(y)
        assert counts.min() > 0.08 and counts.max() < 0.12        # stratified: about 10% per class
    again = load_dataset("digits")
    assert torch.equal(again.x_test, digits.x_test) and torch.equal(again.y_train, digits.y_train)


def test_digits_splits_are_disjoint_and_cover_the_data(digits):
    from sklearn.datasets import load_digits as sk

    idx = {k: set(v.tolist()) for k, v in digits.indices.items()}
    assert not idx["train"] & idx["val"] and not idx["train"] & idx["test"] and not idx["val"] & idx["test"]
    assert idx["train"] | idx["val"] | idx["test"] == set(range(1797))
    raw = sk().data / 16.0
    assert torch.allclose(digits.x_test.flatten(1), torch.tensor(raw[digits.indices["test"]], dtype=torch.float32))


def test_blobs_counts_seeds_and_box():
    data = load_blobs(means=[(0.2, 0.2), (0.8, 0.8), (0.5, 0.9)], stds=[(0.05, 0.05)] * 3, counts=[30, 20, 5], seed=3)
    assert torch.equal(torch.bincount(data.y_train), torch.tensor([30, 20, 5]))
    assert data.x_train.shape == (55, 2) and float(data.x_train.min()) >= 0 and float(data.x_train.max()) <= 1
    assert not torch.equal(data.x_train, data.x_test)
    with pytest.raises(ValueError, match="same classes"):
        load_blobs(means=[(0, 0)], stds=[(1, 1)], counts=[1, 2])


@pytest.mark.parametrize("name, folder, file", [
    ("cifar10", "cifar-10-batches-py", "data_batch_1"),
    ("cifar100", "cifar-100-python", "train"),
    ("mnist", "MNIST/raw", "train-images-idx3-ubyte"),
])
def test_offline_a_missing_download_fails_fast_naming_folder_and_files(tmp_path, no_network, name, folder, file):
    start = time.perf_counter()
    with pytest.raises(DataNotAvailable) as err:
        load_dataset(name, root=tmp_path, timeout=5.0)     # the download is attempted; the network is blocked
    elapsed = time.perf_counter() - start
    message = str(err.value)
    assert str(tmp_path / folder) in message and file in message
    assert elapsed < 10, f"took {elapsed:.1f} s"


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_without_download_a_missing_dataset_says_where_to_put_it(tmp_path, name):
    with pytest.raises(DataNotAvailable, match="Put these files into"):
        load_dataset(name, root=tmp_path, download=False)


def test_subset_is_deterministic(digits):
    a = subset(digits.x_test, digits.y_test, 50, seed=1)
    b = subset(digits.x_test, digits.y_test, 50, seed=1)
    assert torch.equal(a[0], b[0]) and len(a[1]) == 50
    assert subset(digits.x_test, digits.y_test, None)[0] is digits.x_test


def _write_idx(folder, n_train=60, n_test=20, gz=True, seed=0):
    """Fashion-MNIST-format idx files (random pixels, labels 0..9), as the Debian package ships them."""
    import gzip
    import struct

    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        with opener(folder / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with opener(folder / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())
    return folder


def test_fashion_mnist_is_read_from_the_debian_folder_with_its_classes_and_groups(tmp_path, monkeypatch, no_network):
    from robustbook import data

    debian = _write_idx(tmp_path / "debian", n_train=100)
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", debian)
    root = tmp_path / "root"
    d = load_dataset("fashion_mnist", root=root, val_size=10)
    assert d.sizes() == {"train": 90, "val": 10, "test": 20}
    assert d.x_train.shape[1:] == (1, 28, 28) and float(d.x_train.max()) <= 1.0
    assert d.class_names == data.FASHION_MNIST_CLASSES and d.class_names[6] == "Shirt"
    assert (root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()      # gunzipped once, into root
    groups = data.FASHION_MNIST_GROUPS
    assert sorted(c for g in groups.values() for c in g) == list(range(10))          # a partition of the classes
    assert [d.class_names[c] for c in groups["footwear"]] == ["Sandal", "Sneaker", "Ankle boot"]


def test_fashion_mnist_prefers_robustbook_data_over_the_debian_folder(tmp_path, monkeypatch):
    from robustbook import data

    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", _write_idx(tmp_path / "debian", seed=1))
    root = tmp_path / "mine"
    _write_idx(root / "FashionMNIST" / "raw", n_train=200, gz=False, seed=2)
    monkeypatch.setenv("ROBUSTBOOK_DATA", str(root))
    assert load_dataset("fashion_mnist", val_size=10).sizes()["train"] == 190      # the folder's 200, not Debian's 60


def test_without_any_source_fashion_mnist_names_the_debian_package_folder_and_download(tmp_path, monkeypatch,
                                                                                         no_network):
    from robustbook import data

    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    start = time.perf_counter()
    with pytest.raises(DataNotAvailable) as err:
        load_dataset("fashion_mnist", root=tmp_path, timeout=5.0)
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert "download" in message and time.perf_counter() - start < 10


def test_points_keep_fixed_subsets_and_refuse_more_than_a_split_has(digits):
    from robustbook.data import shrink
    from robustbook.validate import InvalidArgument

    a, b = load_dataset("digits", points=[100, 0, 50]), shrink(digits, [100, 0, 50])
    assert a.sizes() == {"train": 100, "val": 180, "test": 50}
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)      # the same in every process
    with pytest.raises(InvalidArgument, match="1077"):
        shrink(digits, [2000, 0, 0])
    with pytest.raises(InvalidArgument, match="train, val, test"):
        shrink(digits, [10, 10])
