"""One place decides the device; GPU runs are compared with CPU runs where CUDA exists (skipped here otherwise)."""
import json
import os

import pytest
import torch

import robustbook as rb
from robustbook.book import chapters


def test_the_device_defaults_to_cuda_when_available_and_can_be_overridden(monkeypatch):
    monkeypatch.delenv("ROBUSTBOOK_DEVICE", raising=False)
    assert rb.device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("ROBUSTBOOK_DEVICE", "cpu")
    assert rb.device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("ROBUSTBOOK_DEVICE", "cuda")
        with pytest.raises(ValueError, match="no CUDA device"):
            rb.device()


def test_models_are_trained_and_returned_on_the_chosen_device(digits, monkeypatch):
    monkeypatch.setenv("ROBUSTBOOK_DEVICE", "cpu")
    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 8}, epochs=1, seed=21), digits)
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert rb.attacks.predict_logits(model, digits.x_test[:3]).device == digits.x_test.device


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(chapters()))
def test_smoke_chapter_on_cuda_agrees_with_cpu(tmp_path, name, monkeypatch):
    """Every chapter's smoke profile on CUDA, compared with the same run on the CPU (tolerances: 0.05 on accuracies
    and taus, which float differences move through training; exact on counts that must be 0)."""
    from conftest import make_project
    from robustbook.book.runner import run_chapter

    runs = {}
    for dev in ("cpu", "cuda"):
        root = make_project(tmp_path / dev)
        monkeypatch.setenv("ROBUSTBOOK_ROOT", str(root))
        monkeypatch.setenv("ROBUSTBOOK_CACHE", str(root / "cache"))
        monkeypatch.setenv("ROBUSTBOOK_DEVICE", dev)
        run_chapter(name, "smoke", progress=False, into_book=True)
        runs[dev] = json.loads((root / "_build" / "results" / f"{name}.json").read_text())

    def leaves(v, key=""):
        if isinstance(v, dict):
            for k, w in v.items():
                yield from leaves(w, f"{key}.{k}")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield key, v

    cpu, gpu = dict(leaves(runs["cpu"])), dict(leaves(runs["cuda"]))
    assert cpu.keys() == gpu.keys()
    for key, value in cpu.items():
        if key.endswith(("violations", "below_exact")):
            assert gpu[key] == value == 0, key
        elif "accuracy" in key or "tau" in key or "vra" in key:
            assert abs(gpu[key] - value) <= 0.05 + 1e-9, (key, value, gpu[key])
    assert os.environ["ROBUSTBOOK_DEVICE"] == "cuda"
