"""The audit registry: a plain dict from name to class (``register``, ``create``, ``available``)."""

from __future__ import annotations

from typing import Any

from unmeasured.audits.base import Audit
from unmeasured.errors import ConfigError, one_of

REGISTRY: dict[str, type[Audit]] = {}


def register(cls: type[Audit]) -> type[Audit]:
    """Class decorator: add an audit to the registry under ``cls.name``."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"audit name '{cls.name}' registered twice")
    REGISTRY[cls.name] = cls
    return cls


def available() -> dict[str, type[Audit]]:
    """All registered audits, by name (importing the built-in families first)."""
    _load_builtin()
    return dict(sorted(REGISTRY.items()))


def create(name: str, params: dict[str, Any] | None = None, *, field: str = "audits") -> Audit:
    """Instantiate an audit by name with keyword parameters.

    Raises:
        ConfigError: unknown name (the message lists valid ones) or unknown/invalid parameter.
    """
    registry = available()
    if name not in registry:
        raise ConfigError(f"{field}.name: unknown audit '{name}'; choose {one_of(registry)}")
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
        raise ConfigError(f"{field}: {e}") from None
    except TypeError as e:  # e.g. a wrong type that the constructor itself rejects
        raise ConfigError(f"{field}: {name}: {e}") from None


def _load_builtin() -> None:
    # Importing a family module registers its audits.
    import unmeasured.audits.membership  # noqa: F401
