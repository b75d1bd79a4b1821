"""``--fail-on`` rules: ``"<audit>.<metric> OP NUMBER"``, optionally followed by ``if estimable``.

The left side is matched against every ``"<audit id>.<metric>"`` of a run; ``*`` and ``?`` are
wildcards and brackets are literal, so ``membership.lira[online].auc`` names one variant and
``membership.lira.auc`` (no variant) every variant of LiRA. Rules are checked against the audits
a run plans and the metrics they declare before any work starts (`check_rules`).

A metric that comes out not estimable breaches its rule (a gate that cannot be checked is not
a pass) unless the rule ends with ``if estimable``; a rule none of whose metrics was produced
(every matching audit skipped or failed) is breached too.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from unmeasured.errors import ConfigError
from unmeasured.results import RunResult, Verdict

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_RULE = re.compile(
    r"^\s*(?P<lhs>[A-Za-z0-9_.*?\[\],=-]+)\s*(?P<op>>=|<=|>|<)\s*(?P<rhs>[^\s]+)"
    r"(?P<lenient>\s+if\s+estimable)?\s*$"
)
_VARIANT = re.compile(r"\[[^\]]*\]")


@dataclass(frozen=True)
class Rule:
    """One parsed rule."""

    text: str
    pattern: str
    op: str
    threshold: float
    lenient: bool = False

    def matches(self, key: str) -> bool:
        """Whether ``"<audit id>.<metric>"`` is named by this rule (with or without the id's
        variant)."""
        regex = _compile(self.pattern)
        return bool(regex.fullmatch(key) or regex.fullmatch(_VARIANT.sub("", key)))


def _compile(pattern: str) -> re.Pattern[str]:
    escaped = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(escaped)


def parse_rule(text: str) -> Rule:
    """Parse one rule, e.g. ``"membership.*.tpr_at_fpr_0.01>0.05"``.

    Raises:
        ConfigError: the rule does not have the form ``METRIC OP NUMBER [if estimable]``.
    """
    m = _RULE.match(text)
    if not m:
        raise ConfigError(
            f"--fail-on '{text}': expected '<audit>.<metric> OP NUMBER' with OP one of "
            "'>', '>=', '<', '<=', optionally followed by 'if estimable' "
            "(e.g. 'membership.*.auc>0.6')"
        )
    try:
        threshold = float(m["rhs"])
    except ValueError:
        raise ConfigError(f"--fail-on '{text}': '{m['rhs']}' is not a number") from None
    return Rule(text, m["lhs"], m["op"], threshold, lenient=bool(m["lenient"]))


def check_rules(rules: Iterable[str], planned: Mapping[str, Sequence[str]]) -> list[Rule]:
    """Parse every rule and check that it names at least one metric the run will produce.

    Args:
        rules: the rules as written.
        planned: audit id → the metric names that audit declares.

    Raises:
        ConfigError: a malformed rule, or one that names no planned metric (the message lists
            the run's audit ids and one audit's metric names).
    """
    keys = [f"{aid}.{m}" for aid, metrics in planned.items() for m in metrics]
    parsed = []
    for text in rules:
        rule = parse_rule(text)
        if not any(rule.matches(k) for k in keys):
            ids = ", ".join(planned) or "none"
            example = next(((a, m) for a, m in planned.items() if m), None)
            hint = (
                f"; {example[0]} reports {', '.join(example[1])}"
                if example
                else "; no planned audit reports metrics"
            )
            raise ConfigError(
                f"--fail-on '{text}': names no metric of this run (audits: {ids}{hint})"
            )
        parsed.append(rule)
    return parsed


def evaluate(run: RunResult, rules: Iterable[str]) -> list[Verdict]:
    """The verdict of every metric each rule names in a finished run.

    Raises:
        ConfigError: a malformed rule.
    """
    table = run.metric_table()
    verdicts = []
    for text in rules:
        rule = parse_rule(text)
        matched = [k for k in table if rule.matches(k)]
        if not matched:
            verdicts.append(
                Verdict(
                    rule=text,
                    metric=rule.pattern,
                    value=None,
                    breached=True,
                    reason="no audit this rule names produced the metric (skipped or failed)",
                )
            )
            continue
        for key in matched:
            est = table[key]
            if est.value is None:
                verdicts.append(
                    Verdict(
                        rule=text,
                        metric=key,
                        value=None,
                        breached=not rule.lenient,
                        reason=f"not estimable: {est.reason}",
                    )
                )
                continue
            breached = _OPS[rule.op](est.value, rule.threshold)
            verdicts.append(Verdict(rule=text, metric=key, value=est.value, breached=breached))
    return verdicts
