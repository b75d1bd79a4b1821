"""Records (arrays ``x``, ``y`` and optional per-record columns) and the membership `Split`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Records:
    """A set of labelled records.

    Attributes:
        x: inputs, shape ``(n, *input_shape)``, float32.
        y: integer labels, shape ``(n,)``, int64.
        columns: optional per-record columns of length ``n`` (``"user_id"``, ``"sensitive"``, ...).
        source: where the records came from (a file path or a built-in name), used in messages.
    """

    x: np.ndarray
    y: np.ndarray
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = "<array>"

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def subset(self, index: np.ndarray) -> Records:
        """The records at ``index`` (integer positions or a boolean mask)."""
        return Records(
            x=self.x[index],
            y=self.y[index],
            columns={k: v[index] for k, v in self.columns.items()},
            source=self.source,
        )


@dataclass(frozen=True)
class Split:
    """Who is who in a membership audit.

    Attributes:
        members: records the target was trained on.
        nonmembers: records from the same distribution the target never saw.
        population: the auditor's own data, disjoint from both (for calibration and reference
            models); optional.
        warnings: problems found when the split was built that do not stop the audit
            (e.g. exact duplicates shared by members and non-members).
    """

    members: Records
    nonmembers: Records
    population: Records | None = None
    warnings: tuple[str, ...] = ()

    def audit_records(self) -> tuple[Records, np.ndarray]:
        """Members then non-members as one `Records`, with the ground-truth membership (1/0)."""
        m, n = self.members, self.nonmembers
        cols = {
            k: np.concatenate([m.columns[k], n.columns[k]]) for k in m.columns if k in n.columns
        }
        records = Records(
            x=np.concatenate([m.x, n.x]),
            y=np.concatenate([m.y, n.y]),
            columns=cols,
            source=f"{m.source} + {n.source}",
        )
        is_member = np.concatenate(
            [np.ones(len(m), dtype=np.int8), np.zeros(len(n), dtype=np.int8)]
        )
        return records, is_member
