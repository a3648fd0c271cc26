"""The machinery that runs and renders the book's chapters (no method module imports it).

* :mod:`.specs` — parameters and profiles as data, validated before any work;
* :mod:`.chapters` — the chapters' registrations (imported here, so the registry is complete);
* :mod:`.session` — ``start``: the first cell of every chapter;
* :mod:`.results` — glued numbers, results JSON, claims judged on seeds;
* :mod:`.papers` — the papers' reported numbers, as data with their sources;
* :mod:`.runner` — papermill execution with clean error reports; :mod:`.render` — Jupyter Book,
  Colab notebooks; :mod:`.status` — the status page; :mod:`.cli` — ``python -m robustbook``.
"""
from . import chapters as _registrations  # noqa: F401  (registers the chapters)
from .results import ClaimFailed, Results
from .session import Params, start
from .specs import PROFILES, ParameterError, chapters, get, parameters, resolve

__all__ = ["ClaimFailed", "PROFILES", "ParameterError", "Params", "Results", "chapters", "get", "parameters",
           "resolve", "start"]
