"""Hyper-parameters as declared contracts: a typed, keyword-only signature plus named constraints.

One formatter writes every error, so a wrong audit or recipe parameter reads the same
everywhere: ``audits[1].num_models: membership.lira's 'num_models' must be an int in the range
[1, 100000); got '16'``. Types come from the constructor's annotations (checked strictly: a
string is never read as a number), ranges and choices from the declared constraints.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from unmeasured.errors import ConfigError


@dataclass(frozen=True)
class Constraint:
    """A declared constraint on one hyper-parameter: a predicate and how to say it."""

    check: Callable[[Any], bool]
    description: str


def interval(low: float, high: float, *, closed: str = "neither", kind: type = float) -> Constraint:
    """A number in an interval, e.g. ``interval(0, 1)`` for a rate in (0, 1)."""
    lo_ok = (lambda v: v >= low) if closed in ("left", "both") else (lambda v: v > low)
    hi_ok = (lambda v: v <= high) if closed in ("right", "both") else (lambda v: v < high)
    left = "[" if closed in ("left", "both") else "("
    right = "]" if closed in ("right", "both") else ")"
    name = "an int" if kind is int else "a float"
    numeric = (int,) if kind is int else (int, float)

    def check(v: Any) -> bool:
        return isinstance(v, numeric) and not isinstance(v, bool) and lo_ok(v) and hi_ok(v)

    return Constraint(check, f"{name} in the range {left}{low}, {high}{right}")


def options(*values: Any) -> Constraint:
    """One of a fixed set of values."""
    return Constraint(lambda v: v in values, "one of " + ", ".join(repr(v) for v in values))


BOOLEAN = Constraint(lambda v: isinstance(v, bool), "a bool")


def keyword_params(cls: type) -> list[str]:
    """The keyword-only parameters of ``cls.__init__``: the hyper-parameters."""
    import inspect

    sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]


@functools.cache
def _adapters(cls: type) -> dict[str, TypeAdapter[Any]]:
    try:
        hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except Exception:  # an annotation that cannot be resolved is not checked
        return {}
    adapters = {}
    for name, hint in hints.items():
        if name == "return":
            continue
        try:
            adapters[name] = TypeAdapter(hint)
        except Exception:  # a type pydantic cannot check (an estimator class, say)
            continue
    return adapters


def _type_ok(adapter: TypeAdapter[Any], value: Any) -> bool:
    # TOML has no tuples: a list stands for a tuple
    candidates = [value, tuple(value)] if isinstance(value, list) else [value]
    for candidate in candidates:
        try:
            adapter.validate_python(candidate, strict=True)
            return True
        except ValidationError:
            continue
    return False


def _type_name(adapter: TypeAdapter[Any]) -> str:
    schema = adapter.json_schema()
    kinds = [s.get("type") for s in schema.get("anyOf", [schema])]
    words = {
        "integer": "an int",
        "number": "a number",
        "string": "a string",
        "boolean": "a bool",
        "array": "a list",
        "null": "none",
        "object": "a table",
    }
    named = [words.get(str(k), str(k)) for k in kinds if k]
    return " or ".join(named) if named else "of the declared type"


def check_params(
    obj: Any,
    owner: str,
    constraints: dict[str, Constraint],
    names: Sequence[str] | None = None,
) -> None:
    """Check every hyper-parameter of ``obj`` against its annotation and its constraint.

    Args:
        obj: an audit or recipe whose parameters are stored under the same names.
        owner: how to name it in messages (``"membership.lira"``, ``"MLPRecipe"``).
        constraints: the declared constraints, by parameter name.
        names: the parameters to check (default: the keyword-only ones).

    Raises:
        ConfigError: ``<param>: <owner>'s '<param>' must be ...; got <value>`` for the first
            parameter at fault (the caller prefixes the config field).
    """
    adapters = _adapters(type(obj))
    for key in keyword_params(type(obj)) if names is None else names:
        if not hasattr(obj, key):  # not stored: the owner's own checks say so in its words
            continue
        value = getattr(obj, key)
        constraint = constraints.get(key)
        adapter = adapters.get(key)
        if adapter is not None and not _type_ok(adapter, value):
            what = constraint.description if constraint else _type_name(adapter)
            raise ConfigError(f"{key}: {owner}'s '{key}' must be {what}; got {value!r}")
        if constraint is not None and not constraint.check(value):
            raise ConfigError(
                f"{key}: {owner}'s '{key}' must be {constraint.description}; got {value!r}"
            )
