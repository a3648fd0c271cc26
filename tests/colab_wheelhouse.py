"""Download the wheels the Colab simulation test installs offline: everything `robustbook[colab]` needs that a
fresh Colab-like venv (torch, torchvision, ipykernel and what they bring) does not have.

Run by the Makefile when it builds the venv (the registries are reachable then), so the test itself never
needs a network:  python tests/colab_wheelhouse.py .venv/wheelhouse
The versions are those installed in this venv, so the test installs exactly the stack the book runs on.
"""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# what the simulated Colab venv gets by link from this venv (Colab has these before the first cell runs)
PRESENT = ("torch", "torchvision", "ipykernel")


def closure(roots: list[str]) -> set[str]:
    """Canonical names of the installed distributions needed by ``roots`` (requirements with their extras)."""
    env = default_environment()
    seen: set[str] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in (req.extras or {""})):
                todo.append(sub)
    return {n for n in seen if "[" not in n}


def main(target: str) -> None:
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    needed = closure(["robustbook[colab]"]) - closure(list(PRESENT)) - {"robustbook"}
    pins = [f"{metadata.distribution(n).metadata['Name']}=={metadata.version(n)}" for n in sorted(needed)]
    pins += ["setuptools>=77,<81", "wheel"]         # to build robustbook itself in an isolated build environment
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(out), *pins], check=True)
    (out / "requirements.txt").write_text("\n".join(pins) + "\n")
    print(f"{len(pins)} wheels in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".venv/wheelhouse")
