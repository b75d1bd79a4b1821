"""The embedded demo: an MLP that overfits scikit-learn's digits (shipped with scikit-learn, no
download), audited with the default membership attacks and two reference-model attacks.

Digits is an easy task, so even an overfit model leaks only modestly; the demo reports what it
finds and does not contrive a larger number.
"""

from __future__ import annotations

from pathlib import Path

from unmeasured.api import audit
from unmeasured.data import load_builtin, random_split
from unmeasured.progress import Progress
from unmeasured.results import RunResult
from unmeasured.training import MLPRecipe

#: the recipe of the demo target; reference models are trained with the same one
DEMO_RECIPE = MLPRecipe(hidden=(512,), epochs=150, batch_size=16, lr=1e-3)

DEMO_AUDITS = (
    "membership.loss",
    "membership.confidence",
    "membership.entropy",
    "membership.modified_entropy",
    "membership.label_only",
    ("membership.lira", {"mode": "online", "num_models": 16}),
    ("membership.rmia", {"mode": "offline", "num_models": 4}),
)


def run_demo(*, out: str | Path, seed: int = 0, progress: Progress | None = None) -> RunResult:
    """Train the demo target, audit it and write the run directory ``out``."""
    progress = progress or Progress()
    records = load_builtin("digits")
    data = random_split(records, n_members=300, n_nonmembers=748, n_population=749, seed=seed)
    members = data.require("members")
    progress.log("training the demo target: an MLP on 300 digits, no regularisation")
    model = DEMO_RECIPE.fit(members.x, members.y, num_classes=10, seed=seed)
    return audit(
        model,
        members=members,
        nonmembers=data.nonmembers,
        population=data.population,
        audits=list(DEMO_AUDITS),
        recipe=DEMO_RECIPE,
        seed=seed,
        out=out,
        cache_dir=Path(out) / "cache",
        progress=progress,
    )
