import pytest
import torch

from robustbook.models import ModelNotAvailable, build_model, load_robustbench, robustbench_architecture, robustbench_checkpoint


@pytest.mark.parametrize("arch, options", [("linear", {}), ("mlp", {"width": 16, "depth": 3}), ("cnn", {"width": 8}),
                                           ("mlp", {"activation": "minmax"})])
def test_architectures_on_digit_and_cifar_shapes(arch, options):
    for shape in ((1, 8, 8), (3, 32, 32)):
        model = build_model(arch, shape, 10, **options)
        assert model(torch.rand(4, *shape)).shape == (4, 10)


def test_unknown_architecture_lists_choices():
    with pytest.raises(ValueError, match="valid choices: linear, mlp, cnn"):
        build_model("resnet", (1, 8, 8), 10)


def test_robustbench_loader_reads_a_local_checkpoint(tmp_path):
    """The real robustbench loading code, fed a checkpoint saved locally first (no network)."""
    torch.manual_seed(0)
    reference = robustbench_architecture("Standard", "cifar10", "Linf")
    path = robustbench_checkpoint("Standard", "cifar10", "Linf", tmp_path)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = load_robustbench("Standard", "cifar10", "Linf", model_dir=tmp_path)
    x = torch.rand(2, 3, 32, 32)
    reference.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x))
    assert not model.training


def test_robustbench_missing_checkpoint_offline_names_the_file(tmp_path):
    with pytest.raises(ModelNotAvailable) as err:
        load_robustbench("Carmon2019Unlabeled", "cifar10", "Linf", model_dir=tmp_path, timeout=5)
    assert str(robustbench_checkpoint("Carmon2019Unlabeled", "cifar10", "Linf", tmp_path)) in str(err.value)


def test_robustbench_unknown_name_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown RobustBench model"):
        load_robustbench("NoSuchModel2099", model_dir=tmp_path)
    with pytest.raises(ValueError, match="valid choices"):
        load_robustbench("Standard", dataset="svhn", model_dir=tmp_path)
