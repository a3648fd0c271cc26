"""The first code cell of every chapter: validated parameters, seeds, threads, a results recorder."""
from __future__ import annotations

from typing import Any, Mapping

from ..runtime import setup
from .results import Results
from .specs import parameters


class Params(dict):
    """A chapter's validated parameters, read as ``P.eps`` (or ``P["eps"]``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; the chapter's parameters are: {', '.join(self)}") from None

    def __setattr__(self, name, value):
        raise AttributeError("chapter parameters are read-only; override them with -p NAME VALUE or in the parameters cell")

    def table(self):
        """The parameters as a one-column DataFrame (what the page shows under the title)."""
        import pandas as pd

        return pd.Series({k: v for k, v in self.items()}, name="value").to_frame()


def start(name: str, namespace: Mapping[str, Any]):
    """Validate the parameters (profile + overrides from the namespace), seed, set threads and the device.

    Returns ``(P, res)``: the parameters and the chapter's :class:`Results`.
    """
    P = Params(parameters(name, namespace))
    setup(P.get("seeds", [0])[0])
    return P, Results(name, P.profile)
