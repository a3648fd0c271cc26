"""The tests' task wrapper for robustbook.executor (ROBUSTBOOK_TASK_WRAPPER=faults:wrap).

It reads ROBUSTBOOK_FAULT_DIR and ROBUSTBOOK_FAULT (nobody else does): with FAULT=once every unit raises on its
first try (a marker file per unit remembers the try, across worker processes); with FAULT=<unit name> that unit
always raises. Each try is logged to <dir>/tries.
"""
import os
from pathlib import Path


class InjectedFault(RuntimeError):
    pass


def wrap(fn, args, name):
    folder = Path(os.environ["ROBUSTBOOK_FAULT_DIR"])
    fault = os.environ.get("ROBUSTBOOK_FAULT", "")
    with open(folder / "tries", "a") as f:
        f.write(name + "\n")
    marker = folder / ("tried-" + "".join(c if c.isalnum() else "_" for c in name))
    if fault == "once" and not marker.exists():
        marker.write_text("1")
        raise InjectedFault(f"injected fault in {name} (first try)")
    if fault == name:
        raise InjectedFault(f"injected fault in {name} (every try)")
    return fn(*args)
