"""The `prism-agent` command line (also `python cli.py` from a checkout).

Errors a user can cause (`PrismError`) print as one line on stderr with a non-zero exit; Ctrl-C exits
130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from prism_agent.cli.backends_cmd import backends_app
from prism_agent.cli.clusters import clusters
from prism_agent.cli.console import err, quiet_libraries
from prism_agent.cli.data_cmd import data_app
from prism_agent.cli.decontam_cmd import decontam
from prism_agent.cli.measure_cmd import measure
from prism_agent.cli.models_cmd import models_app
from prism_agent.cli.run_cmd import run
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
app.command("clusters")(clusters)
app.command("run")(run)
app.command("status")(status)
app.command("export")(export)
app.command("decontam")(decontam)


def main(argv: list[str] | None = None) -> None:
    quiet_libraries()
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="prism-agent", standalone_mode=False)
    except PrismError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("interrupted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OSError as exc:  # unreadable/unwritable paths, disk full: the user's environment, not a bug
        err.print(f"[red]error:[/] {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
