"""Run every benchmark in this folder (each writes benchmarks/results/<name>.json); slow_* scripts run on demand."""
import runpy
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
for script in sorted(here.glob("*.py")):
    if script.name in ("common.py", "run_all.py") or script.name.startswith("slow_"):
        continue
    print(f"== {script.name}", flush=True)
    runpy.run_path(str(script), run_name="__main__")
