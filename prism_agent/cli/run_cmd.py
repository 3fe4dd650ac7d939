"""`prism-agent run`: the Prismatic loop until the target count of accepted samples.

Re-running with the same run directory resumes (at the node that was running when it stopped); a larger
`--target` extends a finished run. Input is checked before anything is written or loaded (`run/preflight`),
and Ctrl-C/SIGTERM stop at a step boundary with the command that resumes (`cli/interrupt`).
"""

from __future__ import annotations

import errno
import signal
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import typer

from prism_agent.cli.console import err, out
from prism_agent.cli.interrupt import EXIT_INTERRUPTED, GracefulStop, exit_on_further_signals, invocation
from prism_agent.config.backends import parse_backend
from prism_agent.config.run import FREE_SUMMARY
from prism_agent.errors import BadInputError, PrismError

ROLE_HELP = "local | local:MODEL | vllm:MODEL | openai:MODEL@BASE_URL (more settings: --config)"
FORCE_HELP = ("continue a run directory whose config changed in a field that shapes the data (the refusal "
              f"lists old → new). Free to change without it: {FREE_SUMMARY}")


def role_spec(spec: str, role: str) -> dict:
    """`--generator openai:Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1` → a role table."""
    kind, _, rest = spec.partition(":")
    if kind == "openai":
        model, _, url = rest.rpartition("@")
        if not model or not url:
            raise BadInputError(f"--{role} {spec!r}: expected openai:MODEL@BASE_URL")
        table = {"backend": "openai", "model": model, "base_url": url}
    elif kind in ("local", "vllm"):
        table = {"backend": kind, **({"model": rest} if rest else {})}
    else:
        raise BadInputError(f"--{role} {spec!r}: unknown backend {kind!r}; valid: local, openai, vllm")
    parse_backend(table, where=f"--{role}")
    return table


def _line(update: dict) -> str | None:
    node, data = next(iter(update.items()))
    data = data or {}
    last = data.get("last") or {}
    if node == "prepare":
        line = f"pool ready: {data.get('pool')} rows, {data.get('accepted')}/{data.get('target')} accepted"
        cal = data.get("calibration") or {}
        if "rows" in cal:
            line += (f"; solver calibrated on {cal['rows']} seed labels (agreement with them "
                     f"{cal['accuracy_raw']:.1%} → {cal['accuracy_calibrated']:.1%})")
        elif "skipped" in cal:
            line += f"; solver not calibrated: {cal['skipped']}"
        return line
    if node == "measure":
        return f"G-Vendi {data.get('g_vendi', float('nan')):.3f} over {data.get('pool')} pool rows"
    if node == "cluster":
        c = last.get("cluster", {})
        return f"round {data.get('round')}: k={c.get('k')}, {c.get('sparse')} sparse clusters"
    if node in ("generate", "vote", "reject", "decontaminate"):
        info = last.get(node, {})
        shown = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in info.items()
                 if not isinstance(v, dict | list)}
        return f"  {node}: " + ", ".join(f"{k} {v}" for k, v in shown.items())
    if node == "commit":
        return f"  commit: +{last.get('commit', {}).get('accepted', 0)} → {data.get('accepted')} accepted"
    if node == "finish":
        return f"stopped: {data.get('stop_reason')}"
    return None


def _live(ctx, updates, stop: GracefulStop | None = None) -> None:
    from rich.live import Live

    from prism_agent.ui.dashboard import Dashboard

    dash = Dashboard(ctx.manifest.run_id, ctx.cfg.task, ctx.target, ctx.pool.accepted.count, {},
                     compute=ctx.compute.short())
    with Live(dash, console=out, refresh_per_second=2, transient=False) as live, _say_through(stop, live.console):
        for update in updates:
            node, data = next(iter(update.items()))
            dash.update(node, data)
            if "roles" in ctx.__dict__:  # backends are built lazily by the first step that needs them
                dash.roles = {role: g.model_id for role, g in ctx.roles.items()}
                dash.tokens = {role: (getattr(g, "tokens", 0), getattr(g, "busy_s", 0.0))
                               for role, g in ctx.roles.items()}
                inner = [getattr(g, "inner", g) for g in ctx.roles.values()]
                errors = [f"{g.kind}: {n} retries ({', '.join(g.stats.reasons)})" for g in set(inner)
                          if getattr(g, "stats", None) and g.stats.retries for n in [g.stats.retries]]
                dash.errors = errors


@contextmanager
def _say_through(stop: GracefulStop | None, console):
    """While the dashboard is shown, a Ctrl-C/SIGTERM message on the same screen is printed above it by the
    live console: written straight to stderr (rich's `err` bypasses Live's redirection) it would land beside
    the panel, and the next redraw would erase it and leave stale panel lines behind."""
    if stop is None or not err.is_terminal:  # stderr elsewhere (a log file): nothing on the screen to garble
        yield
        return
    stop.console = console
    try:
        yield
    finally:
        stop.console = err


def run(
    cli: typer.Context,
    task: str = typer.Option(..., "--task", help="nli | math | a plug-in task (module:Class or file.py:Class)"),
    graph: str | None = typer.Option(None, "--graph", help="prismatic (default; an existing run: its own) | vanilla: "
                                     "the paper's baseline, few-shot from random pool samples, no cluster rejection"),
    target: str = typer.Option(..., "--target", help="accepted samples wanted: 300, 200k, 1.5M"),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="default: runs/<task>"),
    config: Path | None = typer.Option(None, "--config", help="TOML: roles, voting, clustering, …"),
    seed: list[str] | None = typer.Option(None, "--seed", help="seed set (built-in name or file); repeatable"),
    seed_sample: int | None = typer.Option(None, "--seed-sample", help="seed rows to start from (default: scaled)"),
    generator: str | None = typer.Option(None, "--generator", help=ROLE_HELP),
    solver: str | None = typer.Option(None, "--solver", help=ROLE_HELP),
    judge: str | None = typer.Option(None, "--judge", help=ROLE_HELP),
    proxy: str | None = typer.Option(None, "--proxy", help="proxy model for gradients (pinned name, folder, .gguf)"),
    per_round: int | None = typer.Option(None, "--per-round", min=1, help="generator requests per round"),
    max_rounds: int | None = typer.Option(None, "--max-rounds", min=1,
                                          help="stop after this many rounds: a generation budget"),
    prompts: Path | None = typer.Option(None, "--prompts", help="folder with your generate.md/solve.md/judge.md"),
    force_config: bool = typer.Option(False, "--force-config", help=FORCE_HELP),
    allow_config_change: bool = typer.Option(False, "--allow-config-change", hidden=True,
                                             help="old name of --force-config"),
    plain: bool = typer.Option(False, "--plain", help="log lines instead of the live dashboard (default off a TTY)"),
    dtype: str | None = typer.Option(None, "--dtype", help="compute dtype of the featurizer and the embedded "
                                     "backends: auto (bfloat16 where the hardware runs it natively: CUDA with "
                                     "bf16, CPUs with AMX or AVX512-BF16; else float32) | bfloat16 | float32. "
                                     "[default: auto; an existing run keeps its featurizer's]"),
) -> None:
    """Grow a gradient-diverse dataset: measure → cluster → few-shot from sparse clusters → generate → vote →
    reject by nearest centroid → decontaminate → commit, until --target samples are accepted.

    Run the same command again to resume. Ctrl-C or SIGTERM stops after the current step (or abandons it
    after a few seconds; nothing finished is lost), exits 130 and prints the command that resumes."""
    from prism_agent.config.backends import parse_roles, read_toml
    from prism_agent.config.run import build_run_config
    from prism_agent.loop.context import RunContext
    from prism_agent.run.dtypes import pin_dtypes, with_dtype
    from prism_agent.run.paths import RunPaths

    roles = dict(read_toml(config).get("roles", {})) if config else {}
    for role, spec in (("generator", generator), ("solver", solver), ("judge", judge)):
        if spec:
            roles[role] = role_spec(spec, role)
    overrides = {"task": task, "graph": graph, "target": target, "seeds": tuple(seed) if seed else None,
                 "seed_sample": seed_sample, "proxy": proxy, "per_round": per_round, "max_rounds": max_rounds,
                 "prompts": str(prompts) if prompts else None}
    root = run_dir or Path("runs") / task
    if graph is None and "graph" not in (read_toml(config) if config else {}):
        overrides["graph"] = _graph_of(root)  # resuming a vanilla run needs no --graph
    cfg = build_run_config(config, overrides)
    if roles:
        cfg = cfg.model_copy(update={"roles": parse_roles(roles)})
    if dtype is not None:
        cfg = with_dtype(cfg, dtype)
    cfg, compute = pin_dtypes(RunPaths(root), cfg)  # before preflight: it compares cfg with the manifest
    from prism_agent.tasks.registry import get_task

    checked = get_task(cfg.task)  # unknown tasks and broken user templates fail before anything is written
    checked.prompts_dir = cfg.prompts
    checked.check_templates()
    _preflight(root, cfg, checked.seeds, force_config or allow_config_change)
    resume = invocation((cli.obj or {}).get("argv"))  # `main` passes the arguments; else sys.argv
    with _environment_errors(root, resume):
        ctx = RunContext.open(root, cfg, allow_config_change=force_config or allow_config_change)
        err.print(f"run {ctx.manifest.run_id} in {root}: task {task}, target {ctx.target}", highlight=False,
                  markup=False, soft_wrap=True)
        for line in (compute.header(), *compute.notes):
            err.print(line, highlight=False, markup=False, soft_wrap=True)
        ctx.compute = compute  # the header's reasons ("auto: …"), not the re-pinned config's
        _loop(ctx, root, resume, plain)


def _graph_of(root: Path) -> str | None:
    """The graph an existing run directory was started with (None for a new or unreadable one)."""
    from prism_agent.errors import PrismError
    from prism_agent.run.manifest import read_manifest
    from prism_agent.run.paths import RunPaths

    try:
        return (read_manifest(RunPaths(root)).config or {}).get("graph")
    except PrismError:
        return None


def _loop(ctx, root: Path, resume: str, plain: bool) -> None:
    """Stream the graph from its last checkpoint; on Ctrl-C/SIGTERM stop, print `resume` and exit 130."""
    import importlib

    from langgraph.checkpoint.sqlite import SqliteSaver

    builder = importlib.import_module(f"prism_agent.graphs.{ctx.cfg.graph}").builder

    conn = sqlite3.connect(ctx.paths.checkpoints, check_same_thread=False)
    stopped = False
    try:
        with GracefulStop() as stop:  # before anything is printed: a signal from now on is handled
            graph = builder.compile(checkpointer=SqliteSaver(conn))
            thread = {"configurable": {"thread_id": ctx.manifest.run_id}, "recursion_limit": 10_000_000}
            state = graph.get_state(thread)
            pending = state.next
            start = None if pending else {"run_dir": str(root), "idle_rounds": 0}
            if pending:
                _follow_moved_run(ctx, (state.values or {}).get("run_dir"))
                err.print(f"resuming at {', '.join(pending)}", highlight=False)
            t0 = time.perf_counter()
            updates = graph.stream(start, thread, stream_mode="updates")
            try:
                if plain or not out.is_terminal:
                    for update in stop.until(updates):
                        line = _line(update)
                        if line:  # one log line per update: never wrapped at the console's width
                            out.print(line, highlight=False, markup=False, soft_wrap=True)
                else:
                    _live(ctx, stop.until(updates), stop)
            except KeyboardInterrupt:  # a second signal, or the grace period ran out: the step is abandoned
                stop.requested = stop.requested or signal.SIGINT
            except PrismError:  # e.g. a call failed for good: its round never commits, so record its counts now
                _record_usage(ctx, graph, thread)
                raise
            stop.disarm()
            updates.close()  # lets LangGraph write the checkpoint of the last finished step
            if stop.requested and graph.get_state(thread).next:
                err.print(f"stopped; {ctx.pool.accepted.count}/{ctx.target} accepted and committed. To resume:",
                          highlight=False)
                err.print(resume, highlight=False, markup=False, soft_wrap=True)
                stopped = True
                raise SystemExit(EXIT_INTERRUPTED)  # not typer.Exit: main would add "interrupted"
        out.print(f"done in {time.perf_counter() - t0:.0f} s: {ctx.pool.accepted.count}/{ctx.target} accepted "
                  f"in {root}", highlight=False, soft_wrap=True)
    finally:
        if stopped:  # the handlers were just restored: a signal while winding down now exits at once, with 130
            exit_on_further_signals()
        conn.close()


def _record_usage(ctx, graph, thread) -> None:
    """A round's `usage` event (tokens, endpoint retries and failed calls) is written when it commits; a
    round ended by an error never commits, and `status` would not count what made it fail. Marked
    `unfinished`; a resumed round writes its own event at its commit."""
    if "roles" not in ctx.__dict__:  # no backend was built: nothing to count
        return
    try:
        r = (graph.get_state(thread).values or {}).get("round")
        ctx.events.emit("usage", **({"round": r} if r is not None else {}), roles=ctx.usage_since_last(),
                        backend_errors=ctx.backend_errors_since_last(), unfinished=True)
    except (OSError, sqlite3.Error):  # a full disk: the error on its way out matters more than the counts
        pass


def _follow_moved_run(ctx, stored: str | None) -> None:
    """The checkpointed state names the run directory as the first command gave it. Resumed from another
    working directory (a relative --run-dir) or after the folder was moved or copied, the nodes would look
    the run up under that old path and fail; so the opened run is registered under it as well."""
    if stored and Path(stored).resolve() != ctx.paths.root.resolve():
        from prism_agent.loop import context

        with context._LOCK:
            context._CONTEXTS[str(Path(stored).resolve())] = ctx


def _preflight(root: Path, cfg, task_seeds: tuple[str, ...], force: bool) -> None:
    """Everything that can be checked without writing or loading a model: run directory, seeds, models,
    endpoints. Bad input then costs seconds and leaves the run directory as it was."""
    from prism_agent.run import preflight
    from prism_agent.run.manifest import describe
    from prism_agent.run.paths import RunPaths

    paths = RunPaths(root)
    changes = preflight.check_run_dir(paths, cfg, force=force)
    if changes:
        err.print(f"note: --force-config: continuing {root} with a changed config ({describe(changes)})",
                  highlight=False, markup=False, soft_wrap=True)
    preflight.check_seeds(paths, cfg, task_seeds)
    preflight.check_models(cfg)
    preflight.check_endpoints(cfg)


@contextmanager
def _environment_errors(root: Path, resume: str):
    """A full disk or a file-size limit hit mid-run is the environment, not a bug: one line that says how to
    resume. What was committed stays (atomic writes, commit records, SQLite transactions)."""
    full = "disk full or a file-size limit?"
    try:
        yield
    except OSError as exc:
        if exc.errno is None and "written" in str(exc):  # numpy's short write: "N requested and M written"
            why, where = f"short write ({exc}; {full})", root
        elif exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            why, where = f"{exc.strerror} ({full})", exc.filename or root
        elif exc.errno in (errno.EROFS, errno.EACCES, errno.EIO):
            why, where = exc.strerror, exc.filename or root
        else:
            raise
        raise PrismError(f"cannot write to {where}: {why}; fix that and resume with: {resume}") from None
    except sqlite3.OperationalError as exc:  # SQLite reports a full disk or a file-size limit in its own words
        if not any(w in str(exc) for w in ("full", "disk I/O", "readonly", "unable to open")):
            raise
        raise PrismError(f"cannot write to a SQLite file in {root}: {exc} ({full}); fix that and resume with: "
                         f"{resume}") from None
