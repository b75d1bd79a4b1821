"""A fake run to render: membership audits on planted scores, one that cannot estimate its
low-FPR metrics, a skipped and a failed audit, and an audit of another family."""

from __future__ import annotations

import numpy as np
import pytest

from unmeasured.audits.membership.baselines import LossAttack
from unmeasured.results import AuditResult, Headline, RunResult, TargetCard, Verdict
from unmeasured.stats import Estimate, membership_metrics

N_CLASSES = 3


def membership_audit(
    name: str,
    shift: float,
    seed: int,
    n: int = 400,
    params: dict | None = None,
    audit_id: str = "",
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
    result = AuditResult(
        name,
        id=audit_id,
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
    result.headline = LossAttack().headline(result)  # every membership attack's headline
    return result


@pytest.fixture()
def run() -> RunResult:
    """Four membership audits (one skipped), a failed one, and a robustness audit."""
    return RunResult(
        audits=[
            membership_audit("membership.loss", 0.4, 0),
            membership_audit(
                "membership.lira",
                1.0,
                1,
                params={"mode": "online", "num_models": 16},
                audit_id="membership.lira[online]",
            ),
            AuditResult(
                "membership.rmia",
                id="membership.rmia[offline]",
                status="skipped",
                reason="needs population data",
            ),
            AuditResult("membership.shadow", status="failed", reason="RuntimeError: out of memory"),
            AuditResult(
                "robustness.pgd",
                id="robustness.pgd[linf]",
                metrics={
                    "clean_accuracy": Estimate(0.9, (0.82, 0.95), 100),
                    "robust_accuracy_at_0.01": Estimate(0.6, (0.5, 0.7), 100),
                    "robust_accuracy_at_0.03": Estimate(0.4, (0.3, 0.5), 100),
                    "certified_accuracy": Estimate.not_estimable("needs a Lipschitz bound", 100),
                },
                details={"norm": "linf"},
                headline=Headline(
                    "robust_accuracy_at_0.03",
                    "At L∞ ε = 0.03, an attack brings accuracy from 90.0% to 40.0% [30.0%, 50.0%].",
                    concern=True,
                    severity=0.5,
                ),
            ),
        ],
        target=TargetCard(
            description="torch Sequential",
            num_classes=N_CLASSES,
            parameters=1234,
            input_shape=(8,),
            input_bounds=(0.0, 1.0),
            bounds_source="data",
            accuracy={
                "members": Estimate(1.0, (0.99, 1.0), 400),
                "nonmembers": Estimate(0.81, (0.77, 0.85), 400),
            },
            files={"/models/model.safetensors": "cd" * 32},
        ),
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
            Verdict("membership.*.auc>0.6", "membership.lira[online].auc", 0.76, True),
            Verdict("membership.*.auc>0.6", "membership.loss.auc", 0.58, False),
        ],
    )
