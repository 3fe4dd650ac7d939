"""`prism-agent run`: the Prismatic loop until the target count of accepted samples.

Re-running with the same run directory resumes (at the node that was running when it stopped); a larger
`--target` extends a finished run.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import typer

from prism_agent.cli.console import err, out
from prism_agent.config.backends import parse_backend
from prism_agent.errors import BadInputError

ROLE_HELP = "local | local:MODEL | vllm:MODEL | openai:MODEL@BASE_URL (more settings: --config)"


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
        return f"pool ready: {data.get('pool')} rows, {data.get('accepted')}/{data.get('target')} accepted"
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


def _live(ctx, updates) -> None:
    from rich.live import Live

    from prism_agent.ui.dashboard import Dashboard

    dash = Dashboard(ctx.manifest.run_id, ctx.cfg.task, ctx.target, ctx.pool.accepted.count, {})
    with Live(dash, console=out, refresh_per_second=2, transient=False):
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


def run(
    task: str = typer.Option(..., "--task", help="nli | math"),
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
    prompts: Path | None = typer.Option(None, "--prompts", help="folder with your generate.md/solve.md/judge.md"),
    allow_config_change: bool = typer.Option(False, "--allow-config-change",
                                             help="continue a run directory with a changed config"),
    plain: bool = typer.Option(False, "--plain", help="log lines instead of the live dashboard (default off a TTY)"),
) -> None:
    """Grow a gradient-diverse dataset: measure → cluster → few-shot from sparse clusters → generate → vote →
    reject by nearest centroid → decontaminate → commit, until --target samples are accepted."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    from prism_agent.config.backends import parse_roles, read_toml
    from prism_agent.config.run import build_run_config
    from prism_agent.graphs.prismatic import builder
    from prism_agent.loop.context import RunContext

    roles = dict(read_toml(config).get("roles", {})) if config else {}
    for role, spec in (("generator", generator), ("solver", solver), ("judge", judge)):
        if spec:
            roles[role] = role_spec(spec, role)
    overrides = {"task": task, "target": target, "seeds": tuple(seed) if seed else None,
                 "seed_sample": seed_sample, "proxy": proxy, "per_round": per_round,
                 "prompts": str(prompts) if prompts else None}
    cfg = build_run_config(config, overrides)
    if roles:
        cfg = cfg.model_copy(update={"roles": parse_roles(roles)})
    from prism_agent.tasks.registry import get_task

    checked = get_task(cfg.task)  # unknown tasks and broken user templates fail before anything is written
    checked.prompts_dir = cfg.prompts
    checked.check_templates()
    root = run_dir or Path("runs") / task
    ctx = RunContext.open(root, cfg, allow_config_change=allow_config_change)
    err.print(f"run {ctx.manifest.run_id} in {root}: task {task}, target {ctx.target}", highlight=False)
    conn = sqlite3.connect(ctx.paths.checkpoints, check_same_thread=False)
    try:
        graph = builder.compile(checkpointer=SqliteSaver(conn))
        thread = {"configurable": {"thread_id": ctx.manifest.run_id}, "recursion_limit": 10_000_000}
        pending = graph.get_state(thread).next
        start = None if pending else {"run_dir": str(root), "idle_rounds": 0}
        if pending:
            err.print(f"resuming at {', '.join(pending)}", highlight=False)
        t0 = time.perf_counter()
        updates = graph.stream(start, thread, stream_mode="updates")
        if plain or not out.is_terminal:
            for update in updates:
                line = _line(update)
                if line:
                    out.print(line, highlight=False, markup=False)
        else:
            _live(ctx, updates)
        out.print(f"done in {time.perf_counter() - t0:.0f} s: {ctx.pool.accepted.count}/{ctx.target} accepted "
                  f"in {root}", highlight=False)
    finally:
        conn.close()
