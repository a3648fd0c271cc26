"""The shape of the library: imports point one way, and one test walks every entry of every registry."""
import ast
import subprocess
import sys
import textwrap
import math
from pathlib import Path

import pytest
import torch

import robustbook as rb
from robustbook import abstain, attacks, data, losses, models, zoo
from robustbook.validate import InvalidArgument

LIB = Path(rb.__file__).parent


def _imports(path: Path, package: str) -> set[str]:
    """Every robustbook module a file imports (module level and inside functions)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    out |= {f"{name}.{a.name}" for a in node.names}
                else:
                    out.add(name)
            elif node.module and node.module.startswith("robustbook"):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("robustbook")}
    return out


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in LIB.rglob("*.py"):
        rel = path.relative_to(LIB.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        graph[name] = {m for m in _imports(path, package) if m != name}
    modules = set(graph)
    # "from . import zoo" names a module; "from .attacks import fab" names the module attacks
    return {m: {d if d in modules else d.rsplit(".", 1)[0] for d in deps} & modules for m, deps in graph.items()}


def test_no_import_circle_in_the_library():
    graph = _graph()
    ignore = {"robustbook", "robustbook.book"}          # package inits re-export; they sit above everything

    def visit(node, stack, seen):
        for dep in graph.get(node, ()):
            if dep in ignore:
                continue
            if dep in stack:
                raise AssertionError(" -> ".join([*stack[stack.index(dep):], dep]))
            if dep not in seen:
                seen.add(dep)
                visit(dep, [*stack, dep], seen)

    for module in graph:
        if module not in ignore:
            visit(module, [module], {module})


def test_no_method_module_imports_the_book_machinery():
    graph = _graph()
    methods = [m for m in graph if not m.startswith("robustbook.book") and m not in ("robustbook", "robustbook.__main__")]
    assert methods, "no method modules found"
    offenders = {m: sorted(d for d in graph[m] if d.startswith("robustbook.book")) for m in methods}
    assert not {m: d for m, d in offenders.items() if d}, offenders


def test_train_imports_losses_and_nothing_imports_train_back():
    graph = _graph()
    assert "robustbook.losses" in graph["robustbook.train"]
    for module in ("robustbook.losses", "robustbook.certify", "robustbook.abstain", "robustbook.consistency"):
        assert "robustbook.train" not in graph[module], module


def test_top_level_api_for_the_chapters():
    for name in ("start", "Results", "train", "zoo", "input_margin", "robust_accuracy", "load_dataset", "OverSeeds"):
        assert getattr(rb, name) is not None
    with pytest.raises(AttributeError):
        rb.no_such_thing


# ------------------------------------------------------------------ registries, walked entry by entry
@pytest.fixture(scope="module")
def net(digits):
    torch.manual_seed(0)
    return rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 32}, epochs=3, seed=0), digits)


@pytest.mark.parametrize("name", list(attacks.ATTACKS))
@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_every_attack_stays_in_its_ball_and_box_and_is_deterministic(net, digits, name, norm):
    if norm not in attacks.ATTACK_NORMS[name]:
        with pytest.raises(InvalidArgument, match="norm"):
            attacks.attack(name, net, digits.x_test[:4], digits.y_test[:4], 0.1, norm=norm)
        return
    x, y = digits.x_test[:40], digits.y_test[:40]
    eps = 0.1 if norm == "Linf" else 0.8
    options = {"setting": "smoke"} if name == "autoattack" else {}
    a = attacks.attack(name, net, x, y, eps, norm=norm, seed=3, **options)
    b = attacks.attack(name, net, x, y, eps, norm=norm, seed=3, **options)
    assert float(attacks.lp_norm(a - x, norm).max()) <= eps * (1 + 1e-5)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b), "not deterministic with a seed"
    assert attacks.accuracy(net, a, y) < attacks.accuracy(net, x, y), "the attack did nothing"


def test_unknown_attack_lists_the_valid_ones(net, digits):
    with pytest.raises(InvalidArgument, match="valid choices: fgsm, pgd, bim, deepfool, cw, autoattack"):
        attacks.attack("mim", net, digits.x_test[:2], digits.y_test[:2], 0.1)


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_every_loss_is_finite_and_has_gradients(digits, name):
    loss = losses.LOSSES[name]
    cfg = rb.TrainConfig(arch="mlp", arch_options={"width": 16, "activation": "minmax"}, method=name,
                         eps=0.1 if loss.adversarial else 0.0, attack_steps=2)
    model = models.build_model("mlp", (1, 8, 8), 10, width=16, activation="minmax")
    if loss.wrap:
        model = loss.wrap(model, cfg)
        model.trace((1, 8, 8))
    model.train()
    value = loss.fn(model, digits.x_train[:16], digits.y_train[:16], cfg, 0.1)
    assert value.dim() == 0 and math.isfinite(float(value.detach()))
    value.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(InvalidArgument, match="valid choices: standard, pgd, trades, mma, era, gloro"):
        losses.get("mart")


@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
def test_every_architecture_builds_for_its_inputs(name):
    for input_shape in ((1, 8, 8), (3, 32, 32)):
        model = models.build_model(name, input_shape, 10)
        assert model(torch.rand(2, *input_shape)).shape == (2, 10)


def test_unknown_architecture_lists_the_valid_ones():
    with pytest.raises(InvalidArgument, match="valid choices: linear, mlp, cnn"):
        models.build_model("resnet", (1, 8, 8), 10)


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_every_dataset_loads_or_says_where_its_files_go(name, tmp_path, no_network):
    if name in ("mnist", "cifar10", "cifar100"):
        with pytest.raises(data.DataNotAvailable, match="Put these files into"):
            data.load_dataset(name, root=tmp_path, timeout=2.0)
        return
    d = data.load_dataset(name)
    assert d.x_train.dim() >= 2 and float(d.x_train.min()) >= 0 and float(d.x_train.max()) <= 1
    if name in data.DATASET_INFO:
        assert (d.num_classes, d.input_shape) == data.DATASET_INFO[name]


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(InvalidArgument, match="valid choices: blobs, synthetic, digits, fashion_mnist, mnist, cifar10, cifar100"):
        data.load_dataset("imagenet")


ZOO_PARAMS = dict(eps=0.1, epochs=1, width=4, attack_steps=1, seed=0, selector_eps=0.15, era_epochs=1, era_lr=1e-3,
                  era_beta=1.0, linear_epochs=2, gloro_eps=0.5, gloro_epochs=1, gloro_width=8, groups=[[0, 1]],
                  toy_eps=0.06, toy_epochs=1, synthetic_epochs=1, synthetic_eps=0.1, synthetic_beta=0.2)


@pytest.mark.parametrize("name", list(zoo.RECIPES))
def test_every_zoo_recipe_trains_and_caches(digits, name):
    toy = name.startswith(("toy_", "synthetic_"))
    d = data.load_blobs(means=[(0.2, 0.2), (0.8, 0.8), (0.5, 0.9)], stds=[(0.05, 0.05)] * 3, counts=[20, 20, 8]) \
        if toy else digits
    model = zoo.load(name, d, **ZOO_PARAMS)
    again = zoo.load(name, d, **ZOO_PARAMS)
    x = d.x_test[:5]
    assert torch.equal(attacks.predict_logits(model, x), attacks.predict_logits(again, x))
    assert zoo.describe([name])[0]["training"] == zoo.RECIPES[name].description


def test_zoo_grid_and_dynamic_rtk_names(digits):
    point = zoo.grid(["adam"], [1], [1], [4], [0.0])[0]
    name = zoo.grid_name(point)
    assert name == "grid:adam-lr1-d1-w4-p0"
    assert zoo.config(name, epochs=1, seed=0).lr == zoo.LEARNING_RATES["adam"][1]
    assert zoo.config("gloro_rtk4", **ZOO_PARAMS).loss_options["K"] == 4
    with pytest.raises(InvalidArgument, match="grid point"):
        zoo.config("grid:adam-nonsense", epochs=1, seed=0)


def test_unknown_zoo_model_lists_the_valid_ones(digits):
    with pytest.raises(InvalidArgument, match="valid choices: standard, pgd"):
        zoo.load("resnet", digits, **ZOO_PARAMS)


@pytest.mark.parametrize("name", list(abstain.SELECTORS))
def test_every_selector_selects_and_scores(digits, name):
    from robustbook.certify import GloroNet
    from robustbook.consistency import PseudoMargin

    model = rb.train(rb.TrainConfig(arch="mlp", arch_options={"width": 16, "activation": "minmax"}, epochs=2), digits)
    x = digits.x_test[:30]
    if name == "empirical":
        sel = abstain.make_selector(name, model, 0.1, steps=3, restarts=1).fit_surrogate(digits.x_val[:30])
    elif name == "certified":
        sel = abstain.make_selector(name, GloroNet(model, 0.1), 0.01)
    elif name == "pseudo_margin":
        z = attacks.predict_logits(model, digits.x_train[:40])
        pm = PseudoMargin(hidden=8, epochs=3).fit(z, torch.rand(40), z, torch.rand(40))
        sel = abstain.make_selector(name, model, pm)
    else:
        sel = abstain.make_selector(name, model)
    chosen = sel.select(x)
    assert chosen.dtype == torch.bool and chosen.shape == (30,)
    if sel.differentiable:
        xg = x.clone().requires_grad_(True)
        sel.score(xg).sum().backward()
        assert xg.grad is not None
        assert torch.equal(chosen, sel.score(x).detach() > 0)


def test_unknown_selector_lists_the_valid_ones():
    with pytest.raises(InvalidArgument, match="valid choices: empirical, certified, logit_margin, pseudo_margin"):
        abstain.make_selector("oracle")


def test_every_library_module_imports_on_its_own():
    """Each module imported first, in a process where no robustbook module is loaded yet (an import that works
    only after another module happened to be imported would fail here)."""
    names = [p.stem for p in sorted(LIB.glob("*.py")) if p.stem not in ("__init__", "__main__")]
    script = textwrap.dedent(f"""
        import importlib, sys
        for name in {names!r}:
            for loaded in [m for m in sys.modules if m == "robustbook" or m.startswith("robustbook.")]:
                del sys.modules[loaded]
            importlib.import_module("robustbook." + name)
            print("imported", name)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("imported") == len(names) >= 15
