"""A fake run to render: membership audits on planted scores, one that cannot estimate its
low-FPR metrics, a skipped and a failed audit, and an audit of another family."""

from __future__ import annotations

import numpy as np
import pytest

from unmeasured.results import AuditResult, RunResult, Verdict
from unmeasured.stats import Estimate, membership_metrics

N_CLASSES = 3


def membership_audit(
    name: str, shift: float, seed: int, n: int = 400, params: dict | None = None
) -> AuditResult:
    """A membership audit whose members' scores sit ``shift`` standard deviations higher."""
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(shift, 1, n), rng.normal(0, 1, n)]
    is_member = np.r_[np.ones(n, np.int8), np.zeros(n, np.int8)]
    labels = rng.integers(0, N_CLASSES, 2 * n)
    groups = {
        f"class={c}": membership_metrics(scores[labels == c], is_member[labels == c])
        for c in range(N_CLASSES)
    }
    return AuditResult(
        name,
        metrics=membership_metrics(scores, is_member),
        groups=groups,
        arrays={
            "scores": scores,
            "is_member": is_member,
            "label": labels,
            "record_index": np.arange(2 * n),
        },
        params=params or {"fpr": 0.01},
        details={
            "operating_point": {
                "target_fpr": 0.01,
                "threshold": 2.0,
                "calibrated_on": "population",
                "n_population": 1000,
            }
        },
        duration_s=1.5,
    )


@pytest.fixture()
def run() -> RunResult:
    """Four membership audits (one skipped), a failed one, and a robustness audit."""
    return RunResult(
        audits=[
            membership_audit("membership.loss", 0.4, 0),
            membership_audit(
                "membership.lira", 1.0, 1, params={"mode": "online", "num_models": 16}
            ),
            AuditResult("membership.rmia", status="skipped", reason="needs population data"),
            AuditResult("membership.shadow", status="failed", reason="RuntimeError: out of memory"),
            AuditResult(
                "robustness.pgd",
                metrics={
                    "robust_accuracy": Estimate(0.4, (0.3, 0.5), 100),
                    "certified_accuracy": Estimate.not_estimable("needs a Lipschitz bound", 100),
                },
            ),
        ],
        provenance={
            "seed": 0,
            "started": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T00:02:05+00:00",
            "inputs": {"members": {"path": "m.npz", "sha256": "ab" * 32}},
            "versions": {"torch": "2.13.0"},
            "host": {"cpus": 2, "gpu": None},
            "config": {"fail_on": ["membership.*.auc>0.6"]},
        },
        warnings=["3 non-member records are exact duplicates of member records"],
        verdicts=[
            Verdict("membership.*.auc>0.6", "membership.lira.auc", 0.76, True),
            Verdict("membership.*.auc>0.6", "membership.loss.auc", 0.58, False),
        ],
    )
