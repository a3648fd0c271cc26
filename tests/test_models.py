"""Architectures and the RobustBench loader (fed a local checkpoint; the network blocked where it matters)."""
import pytest
import torch

from robustbook.models import (ModelNotAvailable, build_model, estimate_training_bytes, load_robustbench,
                               robustbench_architecture, robustbench_checkpoint)
from robustbook.validate import InvalidArgument


@pytest.mark.parametrize("arch, options", [("linear", {}), ("mlp", {"width": 16, "depth": 3}), ("cnn", {"width": 8}),
                                           ("mlp", {"activation": "minmax"})])
def test_architectures_on_digit_and_cifar_shapes(arch, options):
    for shape in ((1, 8, 8), (3, 32, 32)):
        model = build_model(arch, shape, 10, **options)
        assert model(torch.rand(4, *shape)).shape == (4, 10)


def test_bad_architecture_options_are_refused():
    with pytest.raises(InvalidArgument, match="width"):
        build_model("cnn", (1, 8, 8), 10, width=0)
    with pytest.raises(InvalidArgument, match="image inputs"):
        build_model("cnn", (64,), 10)
    with pytest.raises(InvalidArgument, match="num_classes"):
        build_model("mlp", (1, 8, 8), 1)


def test_memory_estimate_grows_with_width_and_allocates_nothing():
    small = estimate_training_bytes("cnn", (1, 8, 8), 10, width=8)
    large = estimate_training_bytes("cnn", (1, 8, 8), 10, width=64)
    assert 0 < small < large
    assert estimate_training_bytes("cnn", (1, 8, 8), 10, width=4096) > 2**33      # ~tens of GiB, estimated instantly


def test_robustbench_loader_reads_a_local_checkpoint(tmp_path, no_network):
    """The real robustbench loading code, fed a checkpoint saved locally first (network blocked)."""
    torch.manual_seed(0)
    reference = robustbench_architecture("Standard", "cifar10", "Linf")
    path = robustbench_checkpoint("Standard", "cifar10", "Linf", tmp_path)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = load_robustbench("Standard", "cifar10", "Linf", model_dir=tmp_path)
    x = torch.rand(2, 3, 32, 32)
    reference.eval()
    with torch.no_grad():
        assert torch.allclose(model.cpu()(x), reference(x))
    assert not model.training


def test_robustbench_missing_checkpoint_offline_names_the_file(tmp_path, no_network):
    with pytest.raises(ModelNotAvailable) as err:
        load_robustbench("Carmon2019Unlabeled", "cifar10", "Linf", model_dir=tmp_path, timeout=5)
    assert str(robustbench_checkpoint("Carmon2019Unlabeled", "cifar10", "Linf", tmp_path)) in str(err.value)
    assert not robustbench_checkpoint("Carmon2019Unlabeled", "cifar10", "Linf", tmp_path).exists()


def test_robustbench_unknown_name_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown RobustBench model"):
        load_robustbench("NoSuchModel2099", model_dir=tmp_path)
    with pytest.raises(ValueError, match="valid choices"):
        load_robustbench("Standard", dataset="svhn", model_dir=tmp_path)
