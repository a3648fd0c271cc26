"""Ray's overhead on this machine: the same smoke-profile chapter serially and on a local Ray, in one run.

Each run starts from an empty cache (so every unit is computed) in its own scratch project, one torch thread
per unit in both modes; the ratio (Ray / serial wall time) is what a laptop pays for Ray, and the unit count is
how many independent pieces of work the chapter hands to the executor. Two Ray runs: ``ray`` starts a local Ray
inside the chapter (``ROBUSTBOOK_RAY=auto``, what ``--ray auto`` does: the start is paid by every run), and
``ray_cluster`` joins a local Ray started before (``ray start --head``; what a cluster user pays: scheduling and the
object store, not the start). Target: Ray's overhead at most 15% of the serial time on 2 cores (a slow machine
never fails the build: this is a measurement).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import report  # noqa: E402
from conftest import make_project  # noqa: E402

from robustbook import executor  # noqa: E402
from robustbook.book.runner import run_chapter  # noqa: E402

CHAPTER = os.environ.get("RAY_OVERHEAD_CHAPTER", "05_robustness_metrics")


PORT = 6391


def once(mode: str, address: str | None = None) -> tuple[float, int]:
    root = make_project(Path(tempfile.mkdtemp(prefix=f"ray-overhead-{mode}-")))
    env = {"ROBUSTBOOK_ROOT": str(root), "ROBUSTBOOK_CACHE": str(root / "cache"), "ROBUSTBOOK_THREADS": "1",
           executor.UNIT_LOG: str(root / "units")}
    old = {k: os.environ.get(k) for k in (*env, executor.RAY)}
    os.environ.update(env)
    if mode.startswith("ray"):
        os.environ[executor.RAY] = address or "auto"
    else:
        os.environ.pop(executor.RAY, None)
    try:
        start = time.perf_counter()
        run_chapter(CHAPTER, "smoke", progress=False, into_book=True)
        seconds = time.perf_counter() - start
        units = len((root / "units").read_text().splitlines()) if (root / "units").exists() else 0
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        shutil.rmtree(root, ignore_errors=True)
    return seconds, units


def cluster_run() -> tuple[float, int]:
    """The chapter on a local Ray started beforehand (two CPUs), as a job joins a running cluster."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray_cli, "start", "--head", f"--port={PORT}", "--num-cpus=2", "--include-dashboard=false"],
                   check=True, capture_output=True)
    try:
        return once("ray_cluster", "cluster")
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True)


if __name__ == "__main__":
    serial, units = once("serial")
    ray, ray_units = once("ray")
    cluster, cluster_units = cluster_run()
    report("ray_overhead", {"chapter": CHAPTER, "profile": "smoke", "units": units, "units_on_ray": ray_units,
                            "units_on_cluster": cluster_units,
                            "serial_seconds": round(serial, 1), "ray_seconds": round(ray, 1),
                            "ray_cluster_seconds": round(cluster, 1),
                            "ray_over_serial": round(ray / serial, 3),
                            "ray_cluster_over_serial": round(cluster / serial, 3),
                            "target": "ray_over_serial <= 1.15"})
