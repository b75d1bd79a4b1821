"""One verdict line per audit family, from the audits' headlines: the worst finding of the
family, or why there is none. Shared by the HTML report and the terminal summary."""

from __future__ import annotations

from dataclasses import dataclass

from unmeasured.results import AuditResult, RunResult

#: what a concern and its absence are called in each family
_WORDS = {
    "membership": ("leakage found", "no evidence of leakage"),
    "robustness": ("attacks succeed", "no successful attack"),
    "memorization": ("memorization found", "no evidence of memorization"),
}
_DEFAULT_WORDS = ("concern found", "no concern found")
OUTCOME_TEXT = {
    "failed": "FAILED",
    "incomplete": "INCOMPLETE",
    "passed": "PASS",
    "complete": "COMPLETE",
}


@dataclass(frozen=True)
class FamilyVerdict:
    """The verdict line of one family.

    Attributes:
        family: ``"membership"``, ``"robustness"``, ...
        concern: True (a concern was found), False (none), None (nothing could be measured).
        label: the verdict in two or three words.
        audit_id: the audit the sentence comes from, if any.
        sentence: that audit's headline sentence, or why there is none.
    """

    family: str
    concern: bool | None
    label: str
    audit_id: str | None
    sentence: str

    def text(self) -> str:
        where = f"{self.audit_id}: " if self.audit_id else ""
        return f"{self.family}: {self.label}. {where}{self.sentence}"


def family_verdicts(run: RunResult) -> list[FamilyVerdict]:
    """One verdict per family present in the run, in the order the families first appear."""
    families: dict[str, list[AuditResult]] = {}
    for a in run.audits:
        families.setdefault(a.family, []).append(a)
    return [_verdict(family, audits) for family, audits in families.items()]


def _verdict(family: str, audits: list[AuditResult]) -> FamilyVerdict:
    yes, no = _WORDS.get(family, _DEFAULT_WORDS)
    told = [a for a in audits if a.status == "ok" and a.headline is not None]
    if not told:
        ran = sum(a.status == "ok" for a in audits)
        why = (
            f"{ran} audit(s) ran without a headline"
            if ran
            else f"all {len(audits)} audit(s) skipped or failed"
        )
        return FamilyVerdict(family, None, "not measured", None, why + ".")
    concerning = [a for a in told if a.headline.concern]  # type: ignore[union-attr]
    pool = concerning or [a for a in told if a.headline.concern is False] or told  # type: ignore[union-attr]
    worst = max(pool, key=lambda a: -1e9 if a.headline.severity is None else a.headline.severity)  # type: ignore[union-attr]
    if concerning:
        label, concern = yes, True
    elif any(a.headline.concern is False for a in told):  # type: ignore[union-attr]
        label, concern = no, False
    else:
        label, concern = "inconclusive", None
    return FamilyVerdict(family, concern, label, worst.id, worst.headline.sentence)  # type: ignore[union-attr]
