"""The audit registry: a plain dict from name to class (``register``, ``create``, ``available``).

`FAMILIES` lists the built-in families; importing a family's package registers its audits, so a
new family is one entry here and a new audit one ``@register`` line.
"""

from __future__ import annotations

import importlib
from typing import Any

from unmeasured.audits.base import Audit
from unmeasured.errors import ConfigError, one_of

#: the built-in audit families, each a package ``unmeasured.audits.<family>``
FAMILIES = ("membership", "robustness", "memorization", "defences")

REGISTRY: dict[str, type[Audit]] = {}


def register(cls: type[Audit]) -> type[Audit]:
    """Class decorator: add an audit to the registry under ``cls.name``."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"audit name '{cls.name}' registered twice")
    REGISTRY[cls.name] = cls
    return cls


def available() -> dict[str, type[Audit]]:
    """All registered audits, by name (importing the built-in families first)."""
    for family in FAMILIES:
        importlib.import_module(f"unmeasured.audits.{family}")
    return dict(sorted(REGISTRY.items()))


def family_members(name: str) -> list[str] | None:
    """The audit names a family selector stands for (``"membership"`` or ``"membership.*"``),
    or None when ``name`` is not a family selector."""
    family = name.removesuffix(".*")
    if family != name or "." not in name:
        names = [n for n in available() if n.split(".", 1)[0] == family]
        return names or None
    return None


def create(name: str, params: dict[str, Any] | None = None, *, field: str = "audits") -> Audit:
    """Instantiate an audit by name with keyword parameters.

    Raises:
        ConfigError: unknown name (the message lists valid ones) or an unknown or invalid
            parameter (named as ``<field>.<parameter>``).
    """
    registry = available()
    if name not in registry:
        families = sorted({n.split(".", 1)[0] for n in registry})
        raise ConfigError(
            f"{field}.name: unknown audit '{name}'; choose {one_of(registry)} "
            f"or a family ({', '.join(families)})"
        )
    cls = registry[name]
    params = dict(params or {})
    allowed = cls.param_names()
    for key in params:
        if key not in allowed:
            allowed_text = one_of(allowed) if allowed else "none"
            raise ConfigError(
                f"{field}.{key}: unknown parameter of {name}; allowed: {allowed_text}"
            )
    try:
        return cls(**params)
    except ConfigError as e:
        raise ConfigError(f"{field}.{e}") from None
    except TypeError as e:  # e.g. a wrong type that the constructor itself rejects
        raise ConfigError(f"{field}: {name}: {e}") from None
