"""Do the claims' verdicts depend on the machine? A cheap stand-in for another machine: the whole cpu-profile book
with one torch thread instead of two changes the order of float reductions (and so every trained model a little).
Each run uses its own scratch project and a fresh cache; the verdicts of every claim are compared.

Slow (two cold builds): not part of `make bench`.
    .venv/bin/python benchmarks/slow_verdicts_threads.py [chapter ...]
    .venv/bin/python benchmarks/slow_verdicts_threads.py --reference _build/results [chapter ...]
With ``--reference`` the two-thread run is not repeated: the claims of a finished cold cpu-profile build with the
default two threads (its ``<chapter>.claims.json`` files) stand for it.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import make_project  # noqa: E402

from robustbook.book import chapters  # noqa: E402

args = sys.argv[1:]
reference = None
if args[:1] == ["--reference"]:
    reference, args = Path(args[1]).resolve(), args[2:]
names = args or list(chapters())
runs = {}
if reference is not None:
    runs["2"] = {"seconds": None, "reference": str(reference), "claims": {
        name: json.loads((reference / f"{name}.claims.json").read_text()) for name in names}}
for threads in ("1",) if reference is not None else ("2", "1"):
    root = make_project(Path(tempfile.mkdtemp(prefix=f"robustbook-threads{threads}-")))
    env = {**os.environ, "ROBUSTBOOK_THREADS": threads, "ROBUSTBOOK_CACHE": str(root / "cache"),
           "ROBUSTBOOK_ROOT": str(root)}
    start = time.perf_counter()
    for name in names:
        subprocess.run([sys.executable, "-m", "robustbook", "run", name, "--profile", "cpu"], env=env, check=True,
                       cwd=root, stdout=subprocess.DEVNULL)
    runs[threads] = {"seconds": time.perf_counter() - start, "claims": {
        name: json.loads((root / "_build" / "results" / f"{name}.claims.json").read_text()) for name in names}}

rows, differ = [], 0
for name in names:
    for a, b in zip(runs["2"]["claims"][name], runs["1"]["claims"][name]):
        same = a["verdict"] == b["verdict"]
        differ += not same
        rows.append({"chapter": name, "claim": a["claim"], "two_threads": f"{a['verdict']} ({a['mean']:.4g} ± {a['spread']:.2g})",
                     "one_thread": f"{b['verdict']} ({b['mean']:.4g} ± {b['spread']:.2g})", "same_verdict": same})
out = {"claims": len(rows), "verdicts_that_differ": differ, "rows": rows,
       "seconds": {k: v["seconds"] for k, v in runs.items()}}
(Path(__file__).parent / "results" / "verdicts_threads.json").write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2))
for r in rows:
    if not r["same_verdict"]:
        print("DIFFERS:", r)
