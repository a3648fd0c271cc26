"""Run every benchmark in this folder (each writes benchmarks/results/<name>.json); slow_* scripts run on demand.

Each benchmark runs in its own process: a fresh cache and its own thread settings (the Ray benchmark starts and
stops its own local Ray).
"""
import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(here.glob("*.py")):
        if script.name in ("common.py", "run_all.py") or script.name.startswith("slow_"):
            continue
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=here).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
