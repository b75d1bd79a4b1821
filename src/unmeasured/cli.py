"""The ``unmeasured`` command line: a thin layer over the Python API.

Exit codes, a contract CI builds on:

* 0: every requested audit ran and no gate was breached;
* 1: a gate was breached, or an audit failed (the report then says FAILED or INCOMPLETE);
* 2: bad input of any kind (config, data, target, recipe, gate rule), found before any
  expensive work, as one line on stderr naming the file or field;
* 3: a bug of ours;
* 130: interrupted (Ctrl-C); finished work is kept.

``--debug`` adds the traceback to stderr and never changes the exit code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from unmeasured.errors import InputError, UnmeasuredError

EXIT_OK, EXIT_BREACHED, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

app = typer.Typer(
    name="unmeasured",
    help="Audit a trained model for what test accuracy does not measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or log lines.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    from unmeasured.progress import Progress, RichProgress

    return Progress() if quiet else RichProgress()


def _finish(run, out: Path, quiet: bool) -> int:  # type: ignore[no-untyped-def]
    console = _summary(run)
    console.print(f"report: {out / 'report.html'}", highlight=False, soft_wrap=True)
    console.print(f"results: {out / 'results.json'}", highlight=False, soft_wrap=True)
    for v in run.verdicts:
        if v.breached:
            value = f"{v.value:.4g}" if v.value is not None else v.reason
            console.print(f"FAIL {v.metric} = {value} breaches '{v.rule}'", highlight=False)
    for a in run.audits:
        if a.status == "failed":
            console.print(f"FAILED {a.id}: {a.reason}", highlight=False, soft_wrap=True)
    return EXIT_BREACHED if run.outcome in ("failed", "incomplete") else EXIT_OK


def _summary(run):  # type: ignore[no-untyped-def]
    """Print the run's summary to stdout: a rich table on a terminal, plain text otherwise
    (CI logs, pipes), and return the console for further lines."""
    from rich.console import Console

    from unmeasured.report import print_summary, summary_text

    console = Console(file=sys.stdout)
    if console.is_terminal:
        print_summary(run, console)
    else:
        print(summary_text(run), file=sys.stdout)
    return console


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory to write.")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option(min=0, help="Seed of the whole run.")] = 0,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Train a small MLP on scikit-learn's digits so that it overfits, audit it, write a report."""
    from unmeasured.demo import run_demo

    run = run_demo(out=out, seed=seed, progress=_progress(quiet))
    raise typer.Exit(_finish(run, out, quiet))


@app.command()
def audit(
    config: Annotated[Path, typer.Argument(help="The TOML config file.")],
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<config>-<time>).")
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 if a metric breaches a rule, e.g. 'membership.*.tpr_at_fpr_0.01>0.05'. "
            "Repeatable.",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Override the config's seed.")] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Allow loading pickle/joblib model files (they can run arbitrary code).",
        ),
    ] = False,
    memory_budget_mb: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Warn before training reference models that would need more memory than this "
            "(default: the machine's free memory; also $UNMEASURED_MEMORY_BUDGET_MB).",
        ),
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Audit the model a config file describes."""
    from unmeasured.api import audit_config
    from unmeasured.config import load_config
    from unmeasured.store import default_run_dir
    from unmeasured.training.resources import MEMORY_BUDGET_ENV

    loaded = load_config(config)
    out = out or default_run_dir(config.stem)
    before = os.environ.get(MEMORY_BUDGET_ENV)
    if memory_budget_mb is not None:  # the trainer reads the budget from the environment
        os.environ[MEMORY_BUDGET_ENV] = str(memory_budget_mb)
    try:
        run = audit_config(
            loaded,
            out=out,
            seed=seed,
            fail_on=fail_on or (),
            trust_pickle=trust_pickle,
            progress=_progress(quiet),
        )
    finally:
        if before is None:
            os.environ.pop(MEMORY_BUDGET_ENV, None)
        else:
            os.environ[MEMORY_BUDGET_ENV] = before
    raise typer.Exit(_finish(run, out, quiet))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with results.json.")],
    debug: Debug = False,
) -> None:
    """Re-render report.html (and the terminal summary) from a finished run."""
    from unmeasured.report import write_report
    from unmeasured.results import RunResult

    run = RunResult.load(run_dir)
    path = write_report(run, run_dir)
    console = _summary(run)
    console.print(f"report: {path}", highlight=False, soft_wrap=True)


@app.command(name="list")
def list_audits() -> None:
    """List the available audits and what each needs."""
    from rich.console import Console
    from rich.table import Table

    from unmeasured.audits.registry import available

    table = Table("audit", "needs", "parameters", "what it does", box=None)
    for name, cls in available().items():
        table.add_row(
            name, cls().requirements().describe(), ", ".join(cls.param_names()), cls.summary
        )
    Console(file=sys.stdout, width=160).print(table)


def _version(value: bool) -> None:
    if value:
        from unmeasured import __version__

        print(f"unmeasured {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Audit a trained model for what test accuracy does not measure."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rv = app(args=args, prog_name="unmeasured", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
    except (InputError, UnmeasuredError) as e:
        _traceback(debug)
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        code = EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted: finished audits are saved in the run directory", file=sys.stderr)
        code = 130
    except Exception as e:
        code = _exit_code(e, debug)
    if argv is None:
        sys.exit(code)
    return code


def _exit_code(e: Exception, debug: bool) -> int:
    """Exit codes for the command-line framework's own exceptions (typer ships its own copy of
    click, so they are recognised by shape rather than by class) and for internal errors."""
    name = type(e).__name__
    if name == "Exit":
        return int(getattr(e, "exit_code", 0) or 0)
    if name == "Abort":
        print("error: aborted", file=sys.stderr)
        return EXIT_INPUT
    if hasattr(e, "format_message") and hasattr(e, "exit_code"):  # usage errors
        _traceback(debug)
        print(f"error: {_one_line(e.format_message())}", file=sys.stderr)
        return EXIT_INPUT
    _traceback(debug)
    hint = "" if debug else " (rerun with --debug for the traceback)"
    print(f"internal error: {name}: {_one_line(str(e))}{hint}", file=sys.stderr)
    return EXIT_INTERNAL


def _traceback(debug: bool) -> None:
    """With ``--debug``, the traceback of the exception being handled, on stderr."""
    if debug:
        import traceback

        traceback.print_exc(file=sys.stderr)


def _one_line(text: str) -> str:
    return " ".join(text.split())
