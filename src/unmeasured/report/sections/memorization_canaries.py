"""Report blocks of the canary audits: exposure against repetitions (one point per canary, a
line through each repetition count's mean, the format's maximum ``log2 |R|`` as a ceiling) with
a table of every canary, and the canaries beam search extracted with the width that did it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from matplotlib.figure import Figure

from unmeasured.report.figures import CURVE_COLORS, _svg
from unmeasured.report.format import anchor, inline
from unmeasured.results import AuditResult

if TYPE_CHECKING:
    from unmeasured.report.sections import SectionContext


def exposure_part(result: AuditResult, context: SectionContext) -> Markup:
    """The exposure figure (when canaries were planted) and the per-canary table."""
    rows: list[dict[str, Any]] = result.details.get("canaries", [])
    if not rows:
        return Markup("")
    parts = []
    if result.details.get("planted"):
        parts.append(
            Markup("<figure>{}<figcaption>{}</figcaption></figure>").format(
                inline(
                    _exposure_svg(rows, result.details["max_exposure_bits"]),
                    anchor(result.id) + "-exposure",
                ),
                f"Exposure of each canary against how many times it was planted "
                f"({result.details['method']}); the dashed line is the most a canary can have, "
                f"log2 |R| = {result.details['max_exposure_bits']:.1f} bits. Canaries at 0 "
                "were never planted.",
            )
        )
    body = Markup("").join(
        Markup(
            "<tr><td><code>{}</code></td><td>{}</td><td>{:.2f}</td><td>{}</td><td>{}</td>"
            "<td>{:.2f}</td><td>{:.2f}</td></tr>"
        ).format(
            r["text"],
            "given" if r["repetitions"] is None else r["repetitions"],
            r["exposure"],
            r["method"],
            "—" if r["rank"] is None else f"{r['rank']:,}",
            r["log_perplexity"],
            r["exposure_extrapolated"],
        )
        for r in sorted(rows, key=lambda r: (r["repetitions"] is None, r["repetitions"] or 0))
    )
    parts.append(
        Markup(
            "<table><thead><tr><th>canary</th><th>planted</th><th>exposure (bits)</th>"
            "<th>computed</th><th>rank of {}</th><th>log-perplexity (bits)</th>"
            "<th>skew-normal exposure</th></tr></thead><tbody>{}</tbody></table>"
        ).format(f"{result.details['space_size']:,}", body)
    )
    return Markup("").join(parts)


def extraction_part(result: AuditResult, context: SectionContext) -> Markup:
    """Per canary: whether beam search recovered it and at which width; completions of the
    given prefixes."""
    parts = []
    rows: list[dict[str, Any]] = result.details.get("canaries", [])
    if rows:
        body = Markup("").join(
            Markup("<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
                r["text"],
                "given" if r["repetitions"] is None else r["repetitions"],
                "not recovered" if r["beam_width"] is None else f"yes, width {r['beam_width']}",
                ", ".join(f"{w}: {'—' if p is None else p}" for w, p in r["place_in_beam"].items()),
            )
            for r in sorted(rows, key=lambda r: (r["repetitions"] is None, r["repetitions"] or 0))
        )
        parts.append(
            Markup(
                "<table><thead><tr><th>canary</th><th>planted</th><th>extracted</th>"
                "<th>place in the beam, by width</th></tr></thead><tbody>{}</tbody></table>"
            ).format(body)
        )
    for listed in result.details.get("completions", []):
        items = Markup("").join(
            Markup("<li><code>{}</code> ({:.1f} bits)</li>").format(c["text"], c["log_perplexity"])
            for c in listed["completions"]
        )
        parts.append(
            Markup(
                "<p>Most likely completions of <code>{}</code> (beam width {}):</p><ol>{}</ol>"
            ).format(listed["prefix"], listed["beam_width"], items)
        )
    return Markup("").join(parts)


def _exposure_svg(rows: list[dict[str, Any]], ceiling: float) -> str:
    planted = [r for r in rows if r["repetitions"] is not None]
    counts = sorted({r["repetitions"] for r in planted})
    # repetition counts on a log scale with 0 placed one step left of the smallest count
    position = {c: float(i) for i, c in enumerate(counts)}
    fig = Figure(figsize=(4.6, 3.0))
    ax = fig.add_subplot()
    for i, r in enumerate(planted):
        ax.plot(
            [position[r["repetitions"]]],
            [r["exposure"]],
            "o",
            color=CURVE_COLORS[i % len(CURVE_COLORS)],
            label=r["text"],
        )
    means = [
        sum(r["exposure"] for r in planted if r["repetitions"] == c)
        / sum(1 for r in planted if r["repetitions"] == c)
        for c in counts
    ]
    ax.plot([position[c] for c in counts], means, "-", color="0.45", lw=1, label="mean")
    ax.axhline(ceiling, color="0.45", ls="--", lw=1)
    ax.set_xticks([position[c] for c in counts], [str(c) for c in counts])
    ax.set_xlabel("times planted")
    ax.set_ylabel("exposure (bits)")
    ax.set_ylim(0, ceiling * 1.08)
    if len(planted) <= 10:
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    return _svg(fig, "Exposure of each canary against how many times it was planted")


#: audit name → renderer, merged into the memorization section's `PARTS`
PARTS = {
    "memorization.exposure": exposure_part,
    "memorization.extraction": extraction_part,
}
