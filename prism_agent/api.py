"""The Python API: what the CLI does, as calls. `Run` drives a run directory's loop through the same runner,
checks and files as `prism-agent run` (so a run started from Python resumes from the shell and back), and
`measure` returns the numbers `prism-agent measure --json` prints.

    from prism_agent import Run, measure

    run = Run(task="nli", target=300, run_dir="runs/nli")    # bad input raises here, before anything is written
    for update in run.stream():                             # one Update per finished step
        print(update.step, update.data)
    run.status()                                            # = prism-agent status runs/nli --json
    run.export("nli.parquet")                               # = prism-agent export runs/nli --format parquet
    measure("nli.parquet", limit=64)                        # = prism-agent measure nli.parquet --json
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from prism_agent.errors import BadInputError
from prism_agent.loop.runner import RunResult

__all__ = ["Run", "RunResult", "Update", "measure"]

_EXPORT_SUFFIXES = {".jsonl": "jsonl", ".parquet": "parquet"}


class Update(NamedTuple):
    """One finished step of the loop: its name (`prepare`, `measure`, `cluster`, `generate`, `vote`, `reject`,
    `decontaminate`, `commit`, `finish`) and what it wrote to the loop's state (counts, G-Vendi, the round's
    funnel so far)."""

    step: str
    data: dict


class Run:
    """A run directory and its loop. Arguments mirror `prism-agent run`: role specs are the strings its
    `--generator/--solver/--judge` take (`local`, `local:MODEL`, `vllm:MODEL`, `openai:MODEL@BASE_URL`),
    `config` is its TOML file, and `settings` are further config fields on top of it (`patience=5`,
    `cluster={"k_min": 4}`). The config is built and checked (task, run directory, seeds, models, endpoints)
    here; the run directory is written only when the loop starts."""

    def __init__(self, task: str, target: int | str, run_dir: str | Path | None = None, *,
                 config: str | Path | None = None, graph: str | None = None, seeds: list[str] | None = None,
                 seed_sample: int | None = None, generator: str | None = None, solver: str | None = None,
                 judge: str | None = None, proxy: str | None = None, per_round: int | None = None,
                 max_rounds: int | None = None, prompts: str | Path | None = None, dtype: str | None = None,
                 force_config: bool = False, **settings: Any):
        from prism_agent.cli.console import quiet_libraries
        from prism_agent.loop.setup import preflight, run_config

        quiet_libraries()  # as the CLI: no model hub, no library progress bars
        self.run_dir = Path(run_dir) if run_dir is not None else Path("runs") / task
        overrides = {"task": task, "graph": graph, "target": target, "seeds": tuple(seeds) if seeds else None,
                     "seed_sample": seed_sample, "proxy": proxy, "per_round": per_round, "max_rounds": max_rounds,
                     "prompts": str(prompts) if prompts else None, **settings}
        self.config, self.compute = run_config(self.run_dir, Path(config) if config else None, overrides,
                                               {"generator": generator, "solver": solver, "judge": judge},
                                               dtype=dtype)
        self.force_config = force_config
        preflight(self.run_dir, self.config, force=force_config, note=lambda text: warnings.warn(text, stacklevel=3))
        self.result: RunResult | None = None
        self._ctx = None

    def stream(self) -> Iterator[Update]:
        """Run (or resume) the loop, yielding each finished step; `self.result` is set when it ends. Ctrl-C
        stops after the current step (twice: at once); nothing finished is lost, and calling `stream()` or
        `run()` again resumes."""
        from prism_agent.loop.context import RunContext
        from prism_agent.loop.runner import Runner, environment_errors
        from prism_agent.run.lock import RunLock

        self.result = None
        resume = f"Run(task={self.config.task!r}, run_dir={str(self.run_dir)!r})"
        with environment_errors(self.run_dir, resume), RunLock(self.run_dir):  # one writer (run/lock.py)
            if self._ctx is None:  # opened once: a second stream() in this process keeps the loaded models
                self._ctx = RunContext.open(self.run_dir, self.config, allow_config_change=self.force_config,
                                            compute=self.compute)
                for note in self.compute.notes:
                    warnings.warn(note, stacklevel=2)
            with Runner(self._ctx) as runner:
                updates = runner.stream()
                try:
                    for update in updates:
                        step, data = next(iter(update.items()))
                        yield Update(step, dict(data or {}))
                finally:  # also when the caller stops iterating: the last finished step is checkpointed
                    updates.close()
            self.result = runner.result

    def run(self) -> RunResult:
        """Run (or resume) the loop to its end, or until Ctrl-C; returns how it ended."""
        for _ in self.stream():
            pass
        assert self.result is not None
        return self.result

    def status(self) -> dict:
        """What `prism-agent status RUN_DIR --json` prints (accepted, target, rounds, G-Vendi history, …)."""
        from prism_agent.run.status import run_status

        return run_status(self.run_dir)

    def export(self, out: str | Path, format: str | None = None) -> int:
        """Write the accepted samples as `prism-agent export` does; `format` (jsonl, parquet, hf) defaults to
        the file's suffix. Returns the number of samples written."""
        from prism_agent.run.export import export

        out = Path(out)
        fmt = format or _EXPORT_SUFFIXES.get(out.suffix)
        if fmt is None:
            raise BadInputError(f"{out}: say format='jsonl', 'parquet' or 'hf' (no known suffix)")
        return export(self.run_dir, fmt, out)


def measure(data: str | Path, *, proxy: str | None = None, featurizer: str = "fast", embedding: bool = False,
            features_dir: str | Path | None = None, limit: int | None = None, skip_bad: bool = False,
            max_tokens: int | None = None, id_field: str = "id", prompt_field: str = "prompt",
            response_field: str = "response", ray: dict | None = None, **settings: Any) -> dict:
    """G-Vendi of one dataset (a file, a datasets folder or a built-in set name): the object
    `prism-agent measure DATA --json` prints (`n`, `g_vendi`, `g_vendi_q2`, `g_vendi_qinf`, `embedding_vendi`,
    …). `settings` are featurizer fields (`dim`, `seed`, `rank_in`, `rank_out`, `batch_tokens`, `dtype`,
    `device`, `threads`, …) with the CLI's defaults. Features are cached as by the CLI. `ray` featurizes on a
    Ray cluster: the fields of a run's `[ray]` table, e.g. `{"address": "auto", "actors": 8}`."""
    from pydantic import ValidationError

    from prism_agent.cli.console import quiet_libraries
    from prism_agent.config.featurize import FeaturizerConfig
    from prism_agent.data.reader import Fields
    from prism_agent.errors import one_line
    from prism_agent.measure_dataset import measure as run_measure

    quiet_libraries()
    try:
        config = FeaturizerConfig(kind=featurizer, max_length=max_tokens, **settings)
    except ValidationError as exc:
        raise BadInputError(one_line(exc, root='featurizer')) from None
    ray_config = None
    if ray is not None:
        from prism_agent.config.distributed import RayConfig
        from prism_agent.distributed.session import check

        try:
            ray_config = RayConfig(**ray)
        except ValidationError as exc:
            raise BadInputError(one_line(exc, prefix="ray.")) from None
        check(ray_config)
    fields = Fields(id=id_field, prompt=prompt_field, response=response_field)
    result = run_measure(data, embedding=embedding, fields=fields, config=config, proxy=proxy,
                         features_dir=Path(features_dir) if features_dir else None, skip_bad=skip_bad, limit=limit,
                         ray=ray_config)
    return result.as_json()
