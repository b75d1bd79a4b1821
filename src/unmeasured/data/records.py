"""Records (arrays ``x``, ``y`` and optional per-record columns) and `Datasets`, the data of a
run by role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from unmeasured.errors import ConfigError

#: the roles data can play in a run, in the order reports list them
ROLES = ("members", "nonmembers", "population", "test", "train_sample")
#: roles whose records the target was trained on (train-side accuracy)
TRAIN_ROLES = ("members", "train_sample")
#: per-record columns with a meaning audits rely on
COLUMN_ROLES = ("user", "sensitive", "group")
_ROLE_MEANING = {
    "members": "records the target was trained on",
    "nonmembers": "records from the same distribution the target never saw",
    "population": "the auditor's own data, disjoint from members and non-members",
    "test": "labelled evaluation data",
    "train_sample": "a sample of the target's training data",
}


@dataclass(frozen=True)
class Records:
    """A set of labelled records.

    Attributes:
        x: inputs, shape ``(n, *input_shape)``, float32.
        y: integer labels, shape ``(n,)``, int64.
        columns: optional per-record columns of length ``n`` (``"user"``, ``"sensitive"``,
            ``"group"``, ...).
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
class Datasets:
    """The data of one run, by role; every role is optional, each audit states which it needs.

    Attributes:
        members: records the target was trained on.
        nonmembers: records from the same distribution the target never saw.
        population: the auditor's own data, disjoint from both (calibration, reference models).
        test: labelled evaluation data (robustness, the target card).
        train_sample: a sample of the training data (white-box checks).
        warnings: problems found while loading that do not stop the run.

    Example:
        >>> x, y = np.zeros((4, 2), np.float32), np.arange(4) % 2
        >>> data = Datasets(test=Records(x, y))
        >>> data.roles(), data.get("members") is None
        (('test',), True)
    """

    members: Records | None = None
    nonmembers: Records | None = None
    population: Records | None = None
    test: Records | None = None
    train_sample: Records | None = None
    warnings: tuple[str, ...] = ()

    def get(self, role: str) -> Records | None:
        """The records of ``role``, or None if that role was not given."""
        if role not in ROLES:
            raise ConfigError(f"data role '{role}' is not one of {', '.join(ROLES)}")
        return getattr(self, role)  # type: ignore[no-any-return]

    def require(self, role: str) -> Records:
        """The records of ``role``.

        Raises:
            ConfigError: the role was not given (naming ``data.<role>``).
        """
        records = self.get(role)
        if records is None:
            raise ConfigError(f"data.{role}: needed here ({_ROLE_MEANING[role]}); none was given")
        return records

    def roles(self) -> tuple[str, ...]:
        """The roles that were given, in `ROLES` order."""
        return tuple(r for r in ROLES if getattr(self, r) is not None)

    def items(self) -> list[tuple[str, Records]]:
        """``(role, records)`` for every role given."""
        return [(r, getattr(self, r)) for r in self.roles()]

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one record (the same in every role), or None without data."""
        for _, records in self.items():
            return records.input_shape
        return None

    def audit_records(self) -> tuple[Records, np.ndarray]:
        """Members then non-members as one `Records`, with the ground-truth membership (1/0)."""
        m, n = self.require("members"), self.require("nonmembers")
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

    def with_warnings(self, *warnings: str) -> Datasets:
        """A copy with more warnings."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["warnings"] = (*self.warnings, *warnings)
        return Datasets(**values)
