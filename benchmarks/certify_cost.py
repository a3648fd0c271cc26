"""Chapter 3: cost of certifying with a GloRo net once its Lipschitz constants are known,
against a plain forward pass and against a PGD-based robustness check. One run, ratios.

    .venv/bin/python benchmarks/certify_cost.py
"""
import torch

from common import compare, report
from robustbook.attacks import pgd, predict_logits
from robustbook.certify import relaxation_configs
from robustbook.data import load_digits
from robustbook.train import train

torch.set_num_threads(2)
data = load_digits()
base = dict(arch="cnn", arch_options={"activation": "minmax", "width": 32}, epochs=150, lr=1e-3, seed=0)
configs = relaxation_configs(base, 0.5, [2, 3], [[3, 5, 9], [3, 8, 9], [1, 2, 8], [0, 6], [1, 4]], 2.0)
x = torch.cat([data.x_train, data.x_val, data.x_test])
nets = {name: train(configs[name], data, progress=False) for name in ("local", "rtk3")}
constants = {name: net.sound_constants() for name, net in nets.items()}
local = nets["local"]
y = predict_logits(local, x).argmax(1)
times = compare({
    "forward": lambda: predict_logits(local, x),
    "certify local": lambda: local.certify(x, eps=0.5, constants=constants["local"]),
    "certify rtk3": lambda: nets["rtk3"].certify(x, eps=0.5, constants=constants["rtk3"]),
    "sound constants": lambda: local.sound_constants(),
    "PGD check (L2, 20 steps)": lambda: pgd(local, x, y, 0.5, "L2", steps=20),
}, repeats=7)
report("certify_cost", {
    "points": len(x), "seconds": times,
    "certify_local_over_forward": times["certify local"] / times["forward"],
    "certify_rtk3_over_forward": times["certify rtk3"] / times["forward"],
    "pgd_check_over_certify_local": times["PGD check (L2, 20 steps)"] / times["certify local"],
})
