"""`prism-agent backends check`: probe each role's backend with one small request."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from prism_agent.cli.console import out
from prism_agent.config.backends import ROLES
from prism_agent.config_files import load_roles, with_shorthand

backends_app = typer.Typer(help="Check the text backends configured per role (generator, solver, judge).",
                           no_args_is_help=True)


@backends_app.command("check")
def check(
    role: str | None = typer.Option(None, "--role", help="check only this role: generator | solver | judge"),
    config: Path | None = typer.Option(None, "--config", help="TOML file with [roles.generator] etc."),
    backend: str | None = typer.Option(None, "--backend", help="shorthand: local | openai | vllm (for --role or all)"),
    base_url: str | None = typer.Option(None, "--base-url", help="shorthand: OpenAI-compatible endpoint URL "
                                        "(several: comma-separated)"),
    model: str | None = typer.Option(None, "--model", help="shorthand: served name, pinned name or folder"),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="shorthand: env variable holding the key"),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="seconds per endpoint before giving up"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per backend"),
) -> None:
    """Send one small request (n=2, 16 tokens) per role; print model id, latency, tokens/s and whether the
    backend honoured n itself. Roles with the same backend settings are probed once."""
    from prism_agent.generators.check import check_backend

    roles = load_roles(config)
    from prism_agent.loop.setup import base_urls

    roles = with_shorthand(roles, role, {"backend": backend, "base_url": base_urls(base_url) if base_url else None,
                                         "model": model,
                                         "api_key_env": api_key_env})
    if role:
        roles.of(role)  # refuses unknown role names with the list of valid ones
    wanted = [role] if role else list(ROLES)
    groups: dict[str, list[str]] = {}
    for r in wanted:
        groups.setdefault(roles.of(r).model_dump_json(), []).append(r)
    results = []
    for names in groups.values():
        res = asyncio.run(check_backend(roles.of(names[0]), timeout))
        res.roles = names
        results.append(res)
        if as_json:
            out.print_json(json.dumps({**res.model_dump(), "n_honoured": res.n_honoured}))
    if as_json:
        return
    for res in results:
        honoured = "yes" if res.n_honoured else (
            f"no (the backend returned {res.n_native} of {res.n_requested}; the rest were topped up)")
        dtype = f" · {res.dtype} ({res.dtype_reason})" if res.dtype else ""
        out.print(f"[bold]{', '.join(res.roles)}[/]: {res.backend} · {res.model_id}{dtype}", highlight=False,
                  soft_wrap=True)
        out.print(f"  load {res.load_s:.1f} s · latency {res.latency_s:.2f} s · {res.tokens_per_s:.1f} tokens/s · "
                  f"n honoured: {honoured}", highlight=False)
        out.print(f"  sample: {res.sample!r}", highlight=False, markup=False)
        for url, mode in (res.prefill or {}).items():
            from prism_agent.generators.prefill import describe

            used = (res.prefill_used or {}).get(url, mode)
            override = f" (the config's prefill = {used!r} is used instead)" if used != mode else ""
            out.print(f"  {url}: {describe(mode)}{override}", highlight=False, markup=False, soft_wrap=True)
