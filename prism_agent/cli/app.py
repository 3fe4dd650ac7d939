"""The `prism-agent` command line (also `python cli.py` from a checkout).

Errors a user can cause (`PrismError`) print as one line on stderr with a non-zero exit; Ctrl-C exits
130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click
import typer
from rich.markup import escape

from prism_agent.cli.backends_cmd import backends_app
from prism_agent.cli.clusters import clusters
from prism_agent.cli.console import err, quiet_libraries
from prism_agent.cli.data_cmd import data_app
from prism_agent.cli.decontam_cmd import decontam
from prism_agent.cli.interrupt import exit_after_stop
from prism_agent.cli.measure_cmd import measure
from prism_agent.cli.models_cmd import models_app
from prism_agent.cli.report_cmd import report
from prism_agent.cli.run_cmd import run
from prism_agent.cli.select_cmd import select
from prism_agent.cli.status_cmd import export, status
from prism_agent.errors import PrismError

app = typer.Typer(
    name="prism-agent",
    help="Generate gradient-diverse synthetic reasoning data and measure diversity (G-Vendi).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(backends_app, name="backends")
app.command("measure")(measure)
app.command("select")(select)
app.command("clusters")(clusters)
app.command("run")(run)
app.command("status")(status)
app.command("export")(export)
app.command("decontam")(decontam)
app.command("report")(report)


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(Exit, Abort, ClickException) classes. Newer Typer releases vendor their own copy of click, whose
    exceptions are not click's: both must be caught, or a usage error prints a traceback and an Exit(130)
    becomes exit status 0."""
    exits, aborts, usage = [click.exceptions.Exit, typer.Exit], [click.exceptions.Abort, typer.Abort], [
        click.ClickException]
    try:
        from typer._click import exceptions as vendored
    except ImportError:  # Typer that uses click itself
        vendored = None
    if vendored is not None:
        usage.append(vendored.ClickException)
    return tuple(set(exits)), tuple(set(aborts)), tuple(set(usage))


def main(argv: list[str] | None = None) -> None:
    quiet_libraries()
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else list(argv)
    exits, aborts, usage = _click_exceptions()
    try:  # `obj` carries the arguments so that `run` can print the exact command that resumes it
        code = command.main(args=args, prog_name="prism-agent", standalone_mode=False, obj={"argv": args})
    except PrismError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (*aborts, KeyboardInterrupt):
        err.print("interrupted")
        exit_after_stop()  # 130, also when the interrupt landed in extension-run code (cli/interrupt.py)
    except exits as exc:
        sys.exit(exc.exit_code)
    except usage as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OSError as exc:  # unreadable/unwritable paths, disk full: the user's environment, not a bug
        text = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        err.print("[red]error:[/] " + escape(text), highlight=False, soft_wrap=True)
        sys.exit(2)
    if isinstance(code, int) and code:  # non-standalone Typer returns an Exit's code instead of raising it
        if code == 130:
            err.print("interrupted")
        sys.exit(code)


if __name__ == "__main__":
    main()
