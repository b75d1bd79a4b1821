"""Reports: the self-contained HTML page and the terminal summary."""

from unmeasured.report.html import render_html, write_report
from unmeasured.report.text import print_summary, summary_text

__all__ = ["print_summary", "render_html", "summary_text", "write_report"]
