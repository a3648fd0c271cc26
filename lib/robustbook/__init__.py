"""robustbook: the small library behind the companion book on the robustness of deep classifiers.

A handful of entry points (the rest lives in one module per concept):

>>> import robustbook as rb
>>> data = rb.load_dataset("digits")
>>> model = rb.zoo.load("pgd", data, eps=0.1, epochs=20, width=32, attack_steps=5, seed=0)
>>> rb.robust_accuracy(model, data.x_test, data.y_test, eps=0.1)      # AutoAttack
>>> margins = rb.input_margin(model, data.x_test)                     # FAB: distances + success mask

Method modules (data, models, losses, train, zoo, attacks, margins, consistency, certify, abstain,
shifts, measures, stats, plots, runtime, validate) never import the book machinery in
``robustbook.book``; ``rb.start`` and ``rb.Results`` are forwarded to it for the chapters.
"""
from . import zoo
from .attacks import ATTACKS, accuracy, attack, robust_accuracy, robust_flags
from .data import DATASETS, load_dataset
from .losses import LOSSES
from .margins import fab, input_margin, linear_input_margin, logit_margin
from .models import ARCHITECTURES, build_model, load_robustbench
from .runtime import device, setup
from .stats import OverSeeds
from .train import TrainConfig, train

__version__ = "0.2.0"
__all__ = [
    "ATTACKS", "ARCHITECTURES", "DATASETS", "LOSSES", "OverSeeds", "Results", "TrainConfig", "accuracy", "attack",
    "build_model", "device", "fab", "input_margin", "linear_input_margin", "load_dataset", "load_robustbench",
    "logit_margin", "robust_accuracy", "robust_flags", "setup", "start", "train", "zoo",
]


def __getattr__(name):
    """``rb.start`` / ``rb.Results`` / ``rb.parameters`` come from the book machinery, imported on first use."""
    if name in ("start", "Results", "parameters"):
        from . import book

        return getattr(book, name)
    raise AttributeError(f"module 'robustbook' has no attribute {name!r}")
