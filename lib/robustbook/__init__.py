"""robustbook: the small library behind the companion book on the robustness of deep classifiers.

A handful of entry points (the rest lives in one module per concept):

>>> import robustbook as rb
>>> data = rb.load_dataset("digits")
>>> model = rb.train(rb.TrainConfig(arch="cnn", method="pgd", eps=0.1), data)
>>> x_adv = rb.attack("pgd", model, data.x_test, data.y_test, eps=0.1)
>>> margins = rb.input_margin(model, data.x_test)      # FAB: distances + success mask
"""
from .attacks import ATTACKS, accuracy, attack, fab, robust_accuracy
from .chapters import parameters, start
from .data import DATASETS, load_dataset
from .margins import input_margin, linear_input_margin, logit_margin
from .models import ARCHITECTURES, build_model, load_robustbench
from .results import Results
from .runtime import setup
from .train import LOSSES, TrainConfig, train

__version__ = "0.1.0"
__all__ = [
    "ATTACKS", "ARCHITECTURES", "DATASETS", "LOSSES", "Results", "TrainConfig", "accuracy", "attack",
    "build_model", "fab", "input_margin", "linear_input_margin", "load_dataset", "load_robustbench",
    "logit_margin", "parameters", "robust_accuracy", "setup", "start", "train",
]
