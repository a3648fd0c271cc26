"""Training: seeded, cached by parameters, data and code, atomic and weights-only."""
import subprocess
import sys
import textwrap

import pytest
import torch

from robustbook.attacks import accuracy
from robustbook.runtime import atomic_write, load_torch, save_torch
from robustbook.train import TrainConfig, checkpoint_path, train


def _same(a, b):
    return all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


@pytest.mark.parametrize("method", ["standard", "pgd", "trades", "mma"])
def test_training_is_deterministic_with_a_seed(digits, method):
    cfg = TrainConfig(arch="mlp", arch_options={"width": 32}, method=method, eps=0.1, attack_steps=2, epochs=2, seed=5)
    a = train(cfg, digits, cache=False)
    b = train(cfg, digits, cache=False)
    assert _same(a, b)
    c = train(TrainConfig(**{**cfg.__dict__, "seed": 6}), digits, cache=False)
    assert not _same(a, c)


def test_cache_key_covers_parameters_and_reloads(digits):
    cfg = TrainConfig(arch="cnn", arch_options={"width": 8}, epochs=3, seed=0)
    model = train(cfg, digits)
    path = checkpoint_path(cfg, digits)
    assert path.is_file() and path.with_suffix(".json").is_file()
    again = train(cfg, digits)
    assert _same(model, again)
    assert checkpoint_path(TrainConfig(arch="cnn", arch_options={"width": 8}, epochs=3, seed=0, lr=2e-3), digits) != path
    assert accuracy(model, digits.x_test, digits.y_test) > 0.5


def test_cache_key_covers_the_code(tmp_path, digits):
    """Edit a copy of the library's training loop: the checkpoint key of the same config changes."""
    import shutil

    import robustbook

    copy = tmp_path / "lib" / "robustbook"
    shutil.copytree(robustbook.__path__[0], copy)
    script = textwrap.dedent("""
        import sys; sys.path.insert(0, sys.argv[1])
        from robustbook.data import load_digits
        from robustbook.train import TrainConfig
        print(TrainConfig(arch="mlp", epochs=1).key(load_digits()))
    """)
    run = lambda: subprocess.run([sys.executable, "-c", script, str(copy.parent)], capture_output=True, text=True,
                                 check=True).stdout.strip()
    before = run()
    assert before == TrainConfig(arch="mlp", epochs=1).key(digits)       # the copy computes the same key
    losses = copy / "losses.py"
    losses.write_text(losses.read_text() + "\n# an edit\n")
    after = run()
    assert after != before


def test_mma_trains_on_boundary_points(digits):
    """MMA's margin term: the cross-entropy at the closest adversarial point found within d_max."""
    cfg = TrainConfig(arch="cnn", arch_options={"width": 8}, method="mma", eps=0.2, attack_steps=5, epochs=5, seed=0)
    mma = train(cfg, digits)
    std = train(TrainConfig(arch="cnn", arch_options={"width": 8}, epochs=5, seed=0), digits)
    from robustbook.margins import input_margin

    x = digits.x_test[:60]
    assert float(input_margin(mma, x, n_iter=30).margin.median()) > float(input_margin(std, x, n_iter=30).margin.median())


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

    from robustbook.runtime import cache_load

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_torch(path)
    assert cache_load(path, "model", "k") is None                    # and a cache entry of that kind is refused


def test_standard_cnn_reaches_95_percent(digits):
    model = train(TrainConfig(arch="cnn", epochs=20, seed=0), digits)
    assert accuracy(model, digits.x_test, digits.y_test) >= 0.95
