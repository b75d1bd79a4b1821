"""unmeasured: audit trained models for what test accuracy does not measure.

The short API::

    import unmeasured
    run = unmeasured.audit(model, members=(x_train, y_train), nonmembers=(x_test, y_test))
    run["membership.loss"].metrics["auc"]
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "audit": "unmeasured.api",
    "audit_config": "unmeasured.api",
    "load_config": "unmeasured.config",
    "AuditResult": "unmeasured.results",
    "RunResult": "unmeasured.api",
    "Estimate": "unmeasured.stats.estimate",
}

__all__ = [
    "AuditResult",
    "Estimate",
    "RunResult",
    "__version__",
    "audit",
    "audit_config",
    "load_config",
]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `import unmeasured` (and the CLI's --help) stay fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unmeasured' has no attribute {name!r}")
