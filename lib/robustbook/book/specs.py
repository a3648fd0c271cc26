"""Chapters as data: their parameters, valid values and profiles, validated before any work.

Each chapter declares its parameters once (:class:`Param`) and four profiles: ``smoke`` (seconds,
for the tests), ``cpu`` (the published book: minutes on a 2-core laptop, offline), ``colab`` (real
data on a T4-class GPU) and ``paper`` (the papers' settings). :func:`resolve` validates a profile
plus overrides before any work is done — names, types, finite numbers, ranges, and the chapter's
own cross-checks against the data the values will meet; the notebook's ``parameters`` cell holds
``profile`` and ``None`` for every parameter, and :func:`start` fills and checks them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Mapping

from ..validate import InvalidArgument

PROFILES = ("smoke", "cpu", "colab", "paper")


class ParameterError(InvalidArgument):
    """A chapter parameter is unknown or has a bad value."""


# What a size-like parameter becomes in a *shrunk* run (:func:`shrunk`: the tests' seconds-long runs of the
# colab and paper profiles): a value, FIRST (a list keeps its first item), or KEEP (not a size: the code path
# it selects — a dataset, an architecture, an attack setting, a set of groups — must not change).
FIRST, KEEP = "<first item>", "<keep>"


@dataclass(frozen=True)
class Param:
    kind: type                      # int, float, str, bool or list
    help: str
    choices: tuple | None = None    # valid values (for lists: valid items)
    low: float | None = None        # inclusive bounds for numbers (for lists: of each item)
    high: float | None = None
    item: type | None = None        # element type of a list
    inner: type | None = None       # element type of the inner lists of a list of lists
    unique: bool = False            # for lists: no repeated items
    shrink: Any = None              # every int and list parameter declares one: a value, FIRST or KEEP

    def check(self, name: str, value: Any) -> Any:
        if self.kind is list:
            if not isinstance(value, (list, tuple)) or not value:
                raise ParameterError(f"parameter {name!r} must be a non-empty list ({self.help}); got {value!r}")
            element = Param(self.item, self.help, self.choices, self.low, self.high, item=self.inner)
            out = [element.check(f"{name}[]", v) for v in value]
            if self.unique and len(set(map(repr, out))) != len(out):
                raise ParameterError(f"parameter {name!r} = {value!r} repeats an item; each must appear once")
            return out
        if self.kind is float and isinstance(value, Integral) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise ParameterError(f"parameter {name!r} = {str(value)[:12]}... ({len(str(value))} digits) is too large "
                                     f"for a float ({self.help}); "
                                     f"valid range [{self.low}, {self.high}]") from None
        elif self.kind is float and isinstance(value, Real) and not isinstance(value, bool):
            value = float(value)                    # numpy floats (np.float32) are floats too
        elif self.kind is int and isinstance(value, Integral) and not isinstance(value, bool):
            value = int(value)                      # numpy integers (np.int64) are integers too
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise ParameterError(
                f"parameter {name!r} must be {self.kind.__name__} ({self.help}); got {value!r} ({type(value).__name__})")
        if self.kind is float and not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be a finite number ({self.help}); got {value!r}")
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
    check: Callable[[dict], None] | None = None   # cross-parameter checks, against the data they will meet
    budget_seconds: float = 180.0                 # cpu-profile execution target
    work: Callable[[dict], list] | None = None    # the counted work under resolved parameters (book.estimate.Work)
    units: Callable[[dict], int] | None = None    # units of work it hands to robustbook.executor

    @property
    def notebook(self) -> str:
        return f"notebooks/{self.name}.py"


_registry: dict[str, Chapter] = {}


def register(chapter: Chapter) -> Chapter:
    loose = [k for k, p in chapter.params.items() if p.kind in (int, list) and p.shrink is None]
    if loose:
        raise AssertionError(f"{chapter.name}: parameters {loose} are counts or lists and declare no shrink value "
                             "(Param(..., shrink=VALUE | FIRST | KEEP)); the shrunk test runs need one")
    clash = sorted(set(chapter.params) & set(dir(dict)))
    if clash:
        raise AssertionError(f"{chapter.name}: parameter names {clash} clash with dict methods (P.<name> would "
                             "not read the parameter); rename them")
    for profile in PROFILES:
        values = chapter.profiles.get(profile)
        if values is None or set(values) != set(chapter.params):
            missing = sorted(set(chapter.params) - set(values or {}))
            extra = sorted(set(values or {}) - set(chapter.params))
            raise AssertionError(f"{chapter.name}: profile {profile!r} must set exactly the chapter's parameters "
                                 f"(missing {missing}, unknown {extra})")
    _registry[chapter.name] = chapter
    return chapter


def chapters() -> dict[str, Chapter]:
    """The registered chapters, in book order (``robustbook.book`` registers them on import)."""
    return dict(_registry)


def get(name: str) -> Chapter:
    if name not in _registry:
        raise ParameterError(f"unknown chapter {name!r}; valid choices: {', '.join(_registry)}")
    return _registry[name]


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
        try:
            chapter.check(checked)
        except ParameterError:
            raise
        except InvalidArgument as err:        # a library check on a parameter: same kind of error
            raise ParameterError(str(err)) from None
    return {"profile": profile, **checked}


def shrunk(name: str, profile: str) -> dict:
    """The overrides that shrink ``profile`` of chapter ``name`` to seconds: every size-like parameter takes its
    declared shrink value (lists marked FIRST keep their first item); datasets, architectures, attack settings,
    selectors and groups stay as the profile sets them. Validated like any run (``resolve``)."""
    chapter = get(name)
    values = resolve(name, profile)
    out = {}
    for key, param in chapter.params.items():
        if param.shrink in (None, KEEP):
            continue
        out[key] = values[key][:1] if param.shrink == FIRST else param.shrink
    resolve(name, profile, out)
    return out


def parameters(name: str, namespace: Mapping[str, Any]) -> dict:
    """Inside a notebook: read ``profile`` and the chapter's parameters from the namespace.

    Parameters left at ``None`` take the profile's value; everything is validated.
    """
    chapter = get(name)
    overrides = {k: namespace.get(k) for k in chapter.params}
    return resolve(name, namespace.get("profile", "cpu"), overrides)


def parse_value(text: str) -> Any:
    """A CLI value: a Python literal when it parses as one (``0.1``, ``[1, 2]``, ``True``), else the string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
