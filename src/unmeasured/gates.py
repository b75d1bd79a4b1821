"""``--fail-on`` rules: ``"<audit>.<metric> <op> <number>"``, with shell-style wildcards.

The left side is matched against every ``"<audit name>.<metric name>"`` of a run (so
``membership.*.tpr_at_fpr_0.01`` matches that metric in every membership audit), which avoids any
ambiguity from dots inside metric names. A rule whose metric is not estimable in a run is not
breached; its verdict records ``value = None``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from unmeasured.errors import InputError
from unmeasured.results import RunResult, Verdict

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_RULE = re.compile(r"^\s*(?P<lhs>[A-Za-z0-9_.*?\[\]-]+)\s*(?P<op>>=|<=|>|<)\s*(?P<rhs>\S+)\s*$")


@dataclass(frozen=True)
class Rule:
    text: str
    pattern: str
    op: str
    threshold: float


def parse_rule(text: str) -> Rule:
    """Parse one rule, e.g. ``"membership.*.tpr_at_fpr_0.01>0.05"``.

    Raises:
        InputError: the rule does not have the form ``METRIC OP NUMBER`` (OP one of >, >=, <, <=).
    """
    m = _RULE.match(text)
    if not m:
        raise InputError(
            f"--fail-on '{text}': expected '<audit>.<metric> OP NUMBER' with OP one of "
            "'>', '>=', '<', '<=' (e.g. 'membership.*.auc>0.6')"
        )
    try:
        threshold = float(m["rhs"])
    except ValueError:
        raise InputError(f"--fail-on '{text}': '{m['rhs']}' is not a number") from None
    return Rule(text=text, pattern=m["lhs"], op=m["op"], threshold=threshold)


def evaluate(run: RunResult, rules: Iterable[str]) -> list[Verdict]:
    """The verdict of every metric each rule matches.

    Raises:
        InputError: a rule is malformed or matches no metric of any audit that ran.
    """
    table = run.metric_table()
    verdicts = []
    for text in rules:
        rule = parse_rule(text)
        matched = [k for k in table if fnmatchcase(k, rule.pattern)]
        if not matched:
            names = sorted({k.rsplit(".", 1)[0] for k in table})
            raise InputError(
                f"--fail-on '{text}': matches no metric of this run "
                f"(audits: {', '.join(names) or 'none'}; e.g. 'membership.loss.auc')"
            )
        for key in matched:
            value = table[key].value
            breached = value is not None and _OPS[rule.op](value, rule.threshold)
            verdicts.append(Verdict(rule=text, metric=key, value=value, breached=breached))
    return verdicts
