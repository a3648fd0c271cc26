"""How many torch threads? One training step of the chapter's CNN with 1 and 2 threads, idle
machine, interleaved in one run; then the same with a competing busy process on the other core.

    .venv/bin/python benchmarks/threads.py
"""
import multiprocessing as mp
import time

import torch

from common import compare, report
from robustbook.data import load_digits
from robustbook.models import build_model


def burn(stop):
    while not stop.is_set():
        sum(i * i for i in range(10000))


data = load_digits()
model = build_model("cnn", data.input_shape, 10)
opt = torch.optim.Adam(model.parameters(), 1e-3)
xb, yb = data.x_train[:64], data.y_train[:64]


def step(n):
    def run():
        torch.set_num_threads(n)
        for _ in range(20):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    return run


idle = compare({"1 thread": step(1), "2 threads": step(2)}, repeats=7)
stop = mp.Event()
p = mp.Process(target=burn, args=(stop,))
p.start()
time.sleep(0.5)
busy = compare({"1 thread": step(1), "2 threads": step(2)}, repeats=7)
stop.set()
p.join()
report("threads", {
    "seconds_per_20_steps_idle": idle, "seconds_per_20_steps_one_core_busy": busy,
    "speedup_2_over_1_idle": idle["1 thread"] / idle["2 threads"],
    "speedup_2_over_1_busy": busy["1 thread"] / busy["2 threads"],
    "choice": "2 threads by default (ROBUSTBOOK_THREADS overrides): chapters run alone in one kernel",
})
