import pytest
import torch

from robustbook.attacks import accuracy
from robustbook.runtime import atomic_write, load_torch, save_torch
from robustbook.train import TrainConfig, checkpoint_path, train


def _same(a, b):
    return all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


@pytest.mark.parametrize("method", ["standard", "pgd", "trades"])
def test_training_is_deterministic_with_a_seed(digits, method):
    cfg = TrainConfig(arch="mlp", arch_options={"width": 32}, method=method, eps=0.1, attack_steps=2, epochs=2, seed=5)
    a = train(cfg, digits, cache=False, progress=False)
    b = train(cfg, digits, cache=False, progress=False)
    assert _same(a, b)
    c = train(TrainConfig(**{**cfg.__dict__, "seed": 6}), digits, cache=False, progress=False)
    assert not _same(a, c)


def test_cache_key_covers_parameters_and_reloads(digits):
    cfg = TrainConfig(arch="cnn", arch_options={"width": 8}, epochs=3, seed=0)
    model = train(cfg, digits, progress=False)
    path = checkpoint_path(cfg, digits)
    assert path.is_file() and path.with_suffix(".json").is_file()
    again = train(cfg, digits, progress=False)
    assert _same(model, again)
    assert checkpoint_path(TrainConfig(arch="cnn", arch_options={"width": 8}, epochs=3, seed=0, lr=2e-3), digits) != path
    assert accuracy(model, digits.x_test, digits.y_test) > 0.5


def test_standard_cnn_reaches_95_percent(digits):
    model = train(TrainConfig(arch="cnn", epochs=30, seed=0), digits, progress=False)
    assert accuracy(model, digits.x_test, digits.y_test) >= 0.95


def test_interrupted_write_leaves_no_corrupt_file(tmp_path):
    path = tmp_path / "model.pt"
    save_torch({"w": torch.ones(3)}, path)

    def crash(tmp):
        tmp.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert torch.equal(load_torch(path)["w"], torch.ones(3))        # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]      # and no temporary file is left
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.pt", crash)
    assert not (tmp_path / "new.pt").exists()


def test_cache_loads_weights_only(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_torch(path)


@pytest.mark.parametrize("bad, message", [
    ({"method": "mart"}, "valid choices: standard, pgd, trades"),
    ({"optimizer": "lbfgs"}, "valid choices: adam, sgd"),
    ({"norm": "L1"}, "valid choices: Linf, L2"),
    ({"epochs": 0}, "epochs"),
])
def test_bad_training_config_is_refused(digits, bad, message):
    with pytest.raises(ValueError, match=message):
        train(TrainConfig(**bad), digits, cache=False)
