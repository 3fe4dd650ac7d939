"""`prism-agent run`: the Prismatic loop until the target count of accepted samples.

Re-running with the same run directory resumes (at the node that was running when it stopped); a larger
`--target` extends a finished run. Running the loop is the runner's (`loop/runner.py`, shared with the Python
API); this command parses arguments, renders updates (a live dashboard or plain lines) and picks the exit
code: 130 with the command that resumes after Ctrl-C/SIGTERM (`cli/interrupt`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

from prism_agent.cli.console import err, out
from prism_agent.cli.interrupt import (
    EXIT_INTERRUPTED,
    GracefulStop,
    exit_after_stop,
    exit_on_further_signals,
    invocation,
)
from prism_agent.config.run import FREE_SUMMARY
from prism_agent.loop.setup import ROLE_SPECS, role_spec
from prism_agent.run.rounds import ROUND_STEPS, SUMMARIES, ClusterSummary, CommitSummary, Step

__all__ = ["role_spec", "run"]

ROLE_HELP = f"{ROLE_SPECS} (more settings: --config)"
FORCE_HELP = ("continue a run directory whose config changed in a field that shapes the data (the refusal "
              f"lists old → new). Free to change without it: {FREE_SUMMARY}")


def _line(update: dict) -> str | None:
    node, data = next(iter(update.items()))
    data = data or {}
    last = data.get("last") or {}
    if node == Step.PREPARE:
        line = f"pool ready: {data.get('pool')} rows, {data.get('accepted')}/{data.get('target')} accepted"
        cal = data.get("calibration") or {}
        if "rows" in cal:
            line += (f"; solver calibrated on {cal['rows']} seed labels (agreement with them "
                     f"{cal['accuracy_raw']:.1%} → {cal['accuracy_calibrated']:.1%})")
        elif "skipped" in cal:
            line += f"; solver not calibrated: {cal['skipped']}"
        return line
    if node == Step.MEASURE:
        return f"G-Vendi {data.get('g_vendi', float('nan')):.3f} over {data.get('pool')} pool rows"
    if node == Step.CLUSTER:
        c = ClusterSummary.load(last.get(Step.CLUSTER))
        return f"round {data.get('round')}: k={c.k}, {c.sparse} sparse clusters" if c else None
    if node in ROUND_STEPS:
        info = SUMMARIES[Step(node)].load(last.get(node))
        if info is None:
            return None
        shown = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in info.as_json().items()
                 if not isinstance(v, dict | list)}
        return f"  {node}: " + ", ".join(f"{k} {v}" for k, v in shown.items())
    if node == Step.COMMIT:
        c = CommitSummary.load(last.get(Step.COMMIT)) or CommitSummary()
        return f"  commit: +{c.accepted} → {data.get('accepted')} accepted"
    if node == Step.FINISH:
        return f"stopped: {data.get('stop_reason')}"
    return None


def _live(ctx, updates, stop: GracefulStop | None = None) -> None:
    from rich.live import Live

    from prism_agent.ui.dashboard import Dashboard

    dash = Dashboard(ctx.manifest.run_id, ctx.cfg.task, ctx.target, ctx.pool.accepted.count, {},
                     compute=ctx.compute.short())
    dash.endpoint_urls = _several_endpoints(ctx.cfg)
    if dash.endpoint_urls:  # a resumed run: what earlier processes learnt, from the start
        from prism_agent.run.status import endpoint_info

        dash.endpoints = endpoint_info(ctx.paths.root)
    with Live(dash, console=out, refresh_per_second=2, transient=False) as live, _say_through(stop, live.console):
        for update in updates:
            node, data = next(iter(update.items()))
            dash.update(node, data)
            if dash.endpoint_urls and node in ENDPOINT_NODES:  # prefill modes, parse yield, a round's calls
                from prism_agent.run.status import endpoint_info

                dash.endpoints = endpoint_info(ctx.paths.root)
            if "roles" in ctx.__dict__:  # backends are built lazily by the first step that needs them
                dash.roles = {role: g.model_id for role, g in ctx.roles.items()}
                dash.tokens = {role: (getattr(g, "tokens", 0), getattr(g, "busy_s", 0.0))
                               for role, g in ctx.roles.items()}
                inner = [getattr(g, "inner", g) for g in ctx.roles.values()]
                errors = [f"{g.kind}: {st.retries} retries ({', '.join(st.reasons)})" for g in set(inner)
                          for st in [g.stats()] if st.retries]
                dash.errors = errors


# the nodes after which the per-endpoint lines can change: prefill probed (prepare), parse yield written
# (generate), a round's calls counted (its usage event, at commit), and the last one
ENDPOINT_NODES = (Step.PREPARE, Step.GENERATE, Step.COMMIT, Step.FINISH)


def _several_endpoints(cfg) -> list[str]:
    """The endpoint URLs of the roles that list several (each once, in role order)."""
    from prism_agent.config.backends import ROLES, OpenAIBackendConfig

    urls: list[str] = []
    for role in ROLES:
        backend = cfg.roles.of(role)
        if isinstance(backend, OpenAIBackendConfig) and len(backend.base_urls) > 1:
            urls += [u for u in backend.base_urls if u not in urls]
    return urls


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
    graph: str | None = typer.Option(None, "--graph", help="gain (default; an existing run: its own) | prismatic (the "
                                     "paper's rule) | novelty | generate-only | vanilla (baseline): README "
                                     "\"Acceptance rules\""),
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
    ray: str | None = typer.Option(None, "--ray", help="featurize on a Ray cluster: auto (the one `ray start` "
                                   "joined here) | HOST:PORT | ray://HOST:PORT | local; the address of the config's "
                                   "ray table, which holds the other settings (README \"Running on a Ray cluster\")"),
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
    from prism_agent.loop.context import RunContext
    from prism_agent.loop.runner import environment_errors
    from prism_agent.loop.setup import preflight, run_config
    from prism_agent.run.lock import RunLock

    root = run_dir or Path("runs") / task
    overrides = {"task": task, "graph": graph, "target": target, "seeds": tuple(seed) if seed else None,
                 "seed_sample": seed_sample, "proxy": proxy, "per_round": per_round, "max_rounds": max_rounds,
                 "prompts": str(prompts) if prompts else None, "ray": {"address": ray} if ray else None}
    cfg, compute = run_config(root, config, overrides, {"generator": generator, "solver": solver, "judge": judge},
                              dtype=dtype)
    force = force_config or allow_config_change
    preflight(root, cfg, force=force, note=lambda text: err.print(f"note: --force-config: {text}", highlight=False,
                                                                  markup=False, soft_wrap=True))
    resume = invocation((cli.obj or {}).get("argv"))  # `main` passes the arguments; else sys.argv
    try:
        with environment_errors(root, resume), RunLock(root):  # one writer per run directory (run/lock.py)
            ctx = RunContext.open(root, cfg, allow_config_change=force, compute=compute)
            err.print(f"run {ctx.manifest.run_id} in {root}: task {task}, target {ctx.target}", highlight=False,
                      markup=False, soft_wrap=True)
            for line in (compute.header(), *compute.notes):
                err.print(line, highlight=False, markup=False, soft_wrap=True)
            _loop(ctx, root, resume, plain)
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED:  # stopped, closed and unlocked: 130 now (cli/interrupt.py)
            exit_after_stop()
        raise


def _loop(ctx, root: Path, resume: str, plain: bool) -> None:
    """Run the loop through the runner, rendering its updates; on Ctrl-C/SIGTERM print `resume`, exit 130."""
    from prism_agent.loop.runner import Runner

    stopped = False
    try:
        with Runner(ctx, stop=GracefulStop(console=err)) as runner:
            if runner.pending:
                err.print(f"resuming at {', '.join(runner.pending)}", highlight=False)
            if plain or not out.is_terminal:
                result = runner.run(_plain)
            else:
                result = runner.run(lambda updates: _live(ctx, updates, runner.stop))
            if result.interrupted:
                err.print(f"stopped; {result.accepted}/{result.target} accepted and committed. To resume:",
                          highlight=False)
                err.print(resume, highlight=False, markup=False, soft_wrap=True)
                stopped = True
                raise SystemExit(EXIT_INTERRUPTED)  # not typer.Exit: main would add "interrupted"
        out.print(f"done in {result.seconds:.0f} s: {result.accepted}/{result.target} accepted in {root}",
                  highlight=False, soft_wrap=True)
    finally:
        if stopped:
            # The run is checkpointed and its resources closed (the runner's `with` block has ended): a signal
            # from here on exits at once, with 130. (The stop's own grace timer can no longer fire: disarming
            # it waits for a timer already firing, see `loop/stop.py`.)
            exit_on_further_signals()


def _plain(updates) -> None:
    for update in updates:
        line = _line(update)
        if line:  # one log line per update: never wrapped at the console's width
            out.print(line, highlight=False, markup=False, soft_wrap=True)
