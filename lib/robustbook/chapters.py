"""The chapters of the book as data: their parameters, valid values and profiles.

Each chapter declares its parameters once (:class:`Param`) and three profiles:
``smoke`` (seconds, for tests), ``cpu`` (the published book) and ``paper`` (the papers'
settings, for a GPU with internet).  :func:`resolve` validates a profile plus overrides
before any work is done; the notebook's ``parameters`` cell holds ``profile`` and ``None``
for every parameter, and :func:`parameters` fills and checks them inside the notebook.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

PROFILES = ("smoke", "cpu", "paper")


class ParameterError(ValueError):
    """A chapter parameter is unknown or has a bad value."""


@dataclass(frozen=True)
class Param:
    kind: type                      # int, float, str, bool or list
    help: str
    choices: tuple | None = None    # valid values (for lists: valid items)
    low: float | None = None        # inclusive bounds for numbers (for lists: of each item)
    high: float | None = None
    item: type | None = None        # element type of a list
    inner: type | None = None       # element type of the inner lists of a list of lists

    def check(self, name: str, value: Any) -> Any:
        if self.kind is list:
            if not isinstance(value, (list, tuple)) or not value:
                raise ParameterError(f"parameter {name!r} must be a non-empty list ({self.help}); got {value!r}")
            element = Param(self.item, self.help, self.choices, self.low, self.high, item=self.inner)
            return [element.check(f"{name}[]", v) for v in value]
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise ParameterError(
                f"parameter {name!r} must be {self.kind.__name__} ({self.help}); got {value!r} ({type(value).__name__})")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(
                f"parameter {name!r} = {value!r} is not valid; valid choices: {', '.join(map(str, self.choices))}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ParameterError(f"parameter {name!r} = {value!r} is out of range [{self.low}, {self.high}] ({self.help})")
        return value


@dataclass(frozen=True)
class Chapter:
    name: str
    title: str
    params: Mapping[str, Param]
    profiles: Mapping[str, Mapping[str, Any]]
    check: Callable[[dict], None] | None = None   # cross-parameter checks
    budget_seconds: float = 180.0                 # cpu-profile execution target

    @property
    def notebook(self) -> str:
        return f"notebooks/{self.name}.py"


_registry: dict[str, Chapter] = {}


def register(chapter: Chapter) -> Chapter:
    for profile in PROFILES:
        values = chapter.profiles.get(profile)
        if values is None or set(values) != set(chapter.params):
            raise AssertionError(f"{chapter.name}: profile {profile!r} must set exactly {sorted(chapter.params)}")
    _registry[chapter.name] = chapter
    return chapter


def chapters() -> dict[str, Chapter]:
    from . import chapter_specs  # noqa: F401  (registers the chapters)
    return dict(_registry)


def get(name: str) -> Chapter:
    all_ = chapters()
    if name not in all_:
        raise ParameterError(f"unknown chapter {name!r}; valid choices: {', '.join(all_)}")
    return all_[name]


def resolve(name: str, profile: str = "cpu", overrides: Mapping[str, Any] | None = None) -> dict:
    """The validated parameters of a chapter: its profile, updated with ``overrides``."""
    chapter = get(name)
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; valid choices: {', '.join(PROFILES)}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(chapter.params))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for chapter {name}; "
            f"valid names: {', '.join(chapter.params)}")
    values = {**chapter.profiles[profile], **{k: v for k, v in overrides.items() if v is not None}}
    checked = {k: chapter.params[k].check(k, v) for k, v in values.items()}
    if chapter.check:
        chapter.check(checked)
    return {"profile": profile, **checked}


def parameters(name: str, namespace: Mapping[str, Any]) -> dict:
    """Inside a notebook: read ``profile`` and the chapter's parameters from the namespace.

    Parameters left at ``None`` take the profile's value; everything is validated.
    """
    chapter = get(name)
    overrides = {k: namespace.get(k) for k in chapter.params}
    return resolve(name, namespace.get("profile", "cpu"), overrides)


def start(name: str, namespace: Mapping[str, Any]):
    """The first code cell of every chapter: validated parameters, seeds and threads, a results recorder.

    Returns ``(P, res)``: the parameter dict and the chapter's :class:`robustbook.results.Results`.
    """
    from .results import Results
    from .runtime import setup

    params = parameters(name, namespace)
    print(setup(params["seed"]))
    return params, Results(name)


def parse_value(text: str) -> Any:
    """A CLI value: a Python literal when it parses as one (``0.1``, ``[1, 2]``, ``True``), else the string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
