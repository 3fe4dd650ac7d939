"""One round of the Prismatic loop as steps over files (README "Generating data"; Jung et al., arXiv 2505.20161).

Each step reads the previous step's file in the round folder and writes its own: `<step>.jsonl` (the rows
it keeps) then `<step>.json` (its counts), both atomically. A step whose `.json` exists is done and is
not run again, so a run killed anywhere resumes at the first unfinished step; LLM calls inside a step
that was cut short are replayed from the run's call log, never paid twice. Only `commit` touches the
pool, and it is idempotent through the sample log's commit records.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from prism_agent.atomic import write_atomic, write_jsonl_atomic
from prism_agent.data.reader import Sample
from prism_agent.errors import PrismError
from prism_agent.generators import GenerationError, GenRequest
from prism_agent.loop.context import RunContext
from prism_agent.run.failures import settle
from prism_agent.run.pool import Pool, count_rows, sample_seeds
from prism_agent.run.rounds import (
    SUMMARIES,
    ClusterSummary,
    CommitSummary,
    DecontamSummary,
    GenerateSummary,
    MeasureSummary,
    PrepareSummary,
    RejectSummary,
    Step,
    StepSummary,
    VoteSummary,
)
from prism_agent.seeds import derive_seed
from prism_agent.tasks.generation import generation_messages, generation_stops, parse_candidates

# ---- files of a round ------------------------------------------------------------------------------------


def _rows_path(ctx: RunContext, r: int, step: Step | str) -> Path:
    return ctx.paths.round_dir(r) / f"{Step.of(step).file}.jsonl"


def _summary_path(ctx: RunContext, r: int, step: Step | str) -> Path:
    return ctx.paths.round_dir(r) / f"{Step.of(step).file}.json"


def done(ctx: RunContext, r: int, step: Step | str) -> dict | None:
    """The summary of round r's `step` when that step finished (it is then not run again)."""
    path = _summary_path(ctx, r, step)
    return SUMMARIES[Step.of(step)].load(json.loads(path.read_text())).as_json() if path.exists() else None


def read_rows(ctx: RunContext, r: int, step: Step | str) -> list[dict]:
    path = _rows_path(ctx, r, step)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _finish(ctx: RunContext, r: int, rows: list[dict], summary: StepSummary) -> dict:
    ctx.paths.round_dir(r).mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(_rows_path(ctx, r, summary.step), rows)
    out = summary.as_json()
    data = json.dumps(out).encode()
    write_atomic(_summary_path(ctx, r, summary.step), lambda fh: fh.write(data))
    return out


def _featurize(ctx: RunContext, rows: list[dict]) -> tuple[np.ndarray, list[int]]:
    """Features of (prompt, response) rows and the indices of the rows that could be featurized (on the Ray
    cluster when the run asks for one: `distributed/featurize.py`, the same features)."""
    from prism_agent.gradients.render import encode

    if ctx.ray_featurizer is not None:
        return ctx.ray_featurizer.featurize_rows(rows)

    proxy = ctx.proxy
    encoded, kept = [], []
    for i, row in enumerate(rows):
        enc = encode(proxy.tokenizer, row["prompt"], row.get("response", ""), proxy.max_length)
        if enc is not None:
            encoded.append(enc)
            kept.append(i)
    if not encoded:
        return np.zeros((0, ctx.cfg.featurizer.dim), dtype=np.float32), kept
    return ctx.featurizer.featurize(encoded), kept


# ---- before the first round --------------------------------------------------------------------------------


def prepare(ctx: RunContext) -> dict:
    """Seed the pool (a reproducible sample of the seed sets) and featurize it, once per run, in chunks that
    are each committed as a shard, so a kill loses at most one (`loop/seed_features.py`)."""
    from prism_agent.loop.seed_features import featurize_seeds

    probe_prefill(ctx)
    if not ctx.pool.has_seeds:
        sources = list(ctx.cfg.seeds or ctx.task.seeds)
        rows = sample_seeds(sources, ctx.cfg.seed_rows(count_rows(sources)), ctx.cfg.seed)
        ctx.pool.write_seeds(rows)
    if ctx.pool.accepted.last.features == 0:  # nothing committed yet: the store may lack seed chunks
        featurize_seeds(ctx)
    return PrepareSummary(seeds=ctx.pool.seed_count(), pool=len(ctx.feature_store())).as_json()


def probe_prefill(ctx: RunContext) -> None:
    """Before the seeds and round 1: with `[generation] prefill` on and an openai generator whose prefill is
    `auto`, each of its endpoints' prefill mode is found now and kept in `endpoints.json` (read, else one probe
    request each), so `status` shows every endpoint's mode from the run's start, not after hours of seed
    featurization, and round 1's calls read it from there. A backend of its own does the asking: building the
    run's roles here would load any embedded solver or judge before the seeds are featurized."""
    from prism_agent.generators import make_generator

    backend = ctx.cfg.roles.of("generator")
    if not ctx.cfg.generation.prefill or getattr(backend, "backend", None) != "openai" or backend.prefill != "auto":
        return
    generator = make_generator(backend)
    generator.use_state_dir(ctx.paths.root)

    async def ask():
        try:
            await generator.prepare_prefill()
        finally:
            await generator.aclose()

    ctx.run_async(ask())


def calibrate(ctx: RunContext) -> dict | None:
    """Fit the solver's per-choice offsets on the seeds' gold labels, once per run (choice tasks only; see
    quality/calibration.py). Returns a short summary for the log, or None when the run does not calibrate."""
    from prism_agent.config.vote import CALIBRATION_ROWS
    from prism_agent.quality.calibration import NoCalibration, calibrate_solver, read_calibration

    votes = ctx.cfg.votes
    if not ctx.task.solve_choices or votes.calibrate is False:
        return None
    path = ctx.paths.calibration
    found = read_calibration(path)
    if found is None:
        limit = votes.calibration_rows or CALIBRATION_ROWS
        seeds = [Sample(id=row["id"], prompt=row["prompt"], response=row.get("response", ""))
                 for _, row in zip(range(limit), ctx.pool.iter_seeds(), strict=False)]
        found = ctx.run_async(calibrate_solver(ctx.roles["solver"], ctx.task, seeds, votes))
        text = found.model_dump_json(indent=1).encode()
        write_atomic(path, lambda fh: fh.write(text))
    if isinstance(found, NoCalibration):
        if votes.calibrate:  # asked for explicitly: say why it cannot be done rather than go on without it
            raise PrismError(f"cannot calibrate the solver: {found.reason} (set [vote] calibrate = false)")
        return {"skipped": found.reason}
    return {"rows": found.rows, "accuracy_raw": found.accuracy_raw, "accuracy_calibrated": found.accuracy_calibrated,
            "predicted": found.predicted_calibrated}


def choice_bias(ctx: RunContext) -> tuple[float, ...]:
    """The offsets the solver's choice scores get in this run (none without a calibration)."""
    from prism_agent.quality.calibration import ChoiceCalibration, read_calibration

    if not ctx.task.solve_choices or ctx.cfg.votes.calibrate is False:
        return ()
    found = read_calibration(ctx.paths.calibration)
    return found.offsets if isinstance(found, ChoiceCalibration) else ()


def reconcile(ctx: RunContext) -> None:
    """Undo what a killed commit left: feature shards past the last committed sample record. Before the first
    commit that is the seed count: the store of a run killed in `prepare` is a prefix of the seeds (never
    cut here) and a shard torn by the kill is already gone (`FeatureStore` drops it on open)."""
    store = ctx.feature_store()
    want = ctx.pool.accepted.last.features or ctx.pool.seed_count()
    if len(store) > want:
        store.truncate(want)


# ---- the round's steps ---------------------------------------------------------------------------------------


def measure(ctx: RunContext) -> dict:
    """G-Vendi of the pool through its running Gram matrix (diversity/gram.py: only the rows committed since
    the last measure are added), audited by a full recompute every `[measure] audit_every` rounds."""
    from prism_agent.diversity.gram import measure_store

    store = ctx.feature_store()
    every = ctx.cfg.measure.audit_every
    res, info = measure_store(store, audit_now=every > 0 and ctx.pool.accepted.last.round % every == 0)
    return MeasureSummary(g_vendi=res.q1, g_vendi_q2=res.q2, pool=len(store), **info).as_json()


def cluster_config(ctx: RunContext, r: int):
    """Round r's clustering settings: the run's, with a k-means seed of its own (derived from the run's
    cluster seed and r). A round that accepts nothing leaves the pool as it was, and with one seed for every
    round the next round refit the very same clusters and sparse set: a run whose candidates could not reach
    that sparse set stalled until `patience` stopped it (measured: `--target 300` stopped at 17 accepted
    after 5 identical clusterings; other seeds on that pool put 7 and 15 of the 41 last candidates in a
    sparse cluster). A round clustered before per-round seeds existed keeps its saved seed.

    The seed shapes only a round that fits (cluster/incremental.py): a cold fit's seeding and training sample,
    a warm refit's training sample and its new clusters. A round that only updates the previous clustering
    records its seed but keeps its base fit's centroids; a round after one that committed nothing fits cold
    with its own seed, so the stall above cannot come back."""
    from prism_agent.cluster.artifacts import committed_rounds, read_record
    from prism_agent.config.cluster import ClusterConfig

    base = ctx.cfg.cluster
    if r in committed_rounds(ctx.paths.clusters) and \
            ClusterConfig.model_validate(read_record(ctx.paths.clusters, r)["config"]) == base:
        return base
    return base.model_copy(update={"seed": derive_seed(base.seed, "cluster", r) % 2**31})


def cluster(ctx: RunContext, r: int) -> dict:
    """Round r's clustering: a cold fit, a warm refit or an update of the last one (cluster/incremental.py)."""
    from prism_agent.cluster.incremental import cluster_round

    round_, plan = cluster_round(ctx.feature_store(), cluster_config(ctx, r), ctx.paths.clusters, r)
    return ClusterSummary(k=round_.k, sparse=int(round_.sparse.mask.sum()), pool=round_.n, fit=plan.kind).as_json()


def _fewshot_picks(ctx: RunContext, r: int) -> list:
    """Few-shot examples of each request of round r, as the run's strategy picks them."""
    cfg = ctx.cfg
    seeds = [[cfg.seed, r, j] for j in range(cfg.requests_per_round())]
    return ctx.strategy.fewshot_picks(ctx, r, seeds, cfg.generation.shots)


def generate(ctx: RunContext, r: int) -> dict:
    if (summary := done(ctx, r, Step.GENERATE)) is not None:
        return summary
    cfg, gen = ctx.cfg, ctx.cfg.generation
    picks = _fewshot_picks(ctx, r)
    rows = ctx.pool.rows_at(p for pick in picks for p in pick.positions)
    requests = []
    for j, pick in enumerate(picks):
        examples = [Pool.as_sample(rows[int(p)]) for p in pick.positions]
        # one new sample per completion, `num_new` completions per prompt: each ends at its closing tag
        requests.append(GenRequest.chat(
            generation_messages(ctx.task, examples, gen.num_new, gen.prefill), n=gen.num_new,
            temperature=gen.temperature, top_p=gen.top_p, max_tokens=cfg.generation_max_tokens(),
            seed=derive_seed(cfg.seed, r, j), stop=generation_stops(ctx.task, gen.prefill)))
    started = time.perf_counter()
    settled, failed = ctx.run_async(ctx.roles["generator"].generate_settled(requests))
    seconds = time.perf_counter() - started
    n_failed = settle(ctx.paths.round_dir(r), Step.GENERATE.file, len(requests), failed, cfg.max_failed_fraction,
                      lambda j: {"request": j, "seed": requests[j].sampling.seed})
    results = [x for x in settled if x is not None]
    out, blocks = [], 0
    by_endpoint: dict[str, dict[str, int]] = {}
    for j, (pick, req, res) in enumerate(zip(picks, requests, settled, strict=True)):
        if res is None:  # failed for good: recorded in generate-failed.jsonl
            continue
        shown = {rows[int(p)]["prompt"].strip() for p in pick.positions}
        found: list[str] = []
        for c in res.completions:
            parsed = parse_candidates(ctx.task, c.full_text(req.prefill))
            tally = by_endpoint.setdefault(c.endpoint or res.model, {"completions": 0, "parsed": 0})
            tally["completions"] += 1
            tally["parsed"] += bool(parsed)
            for prompt in parsed:
                blocks += 1
                if prompt not in shown and prompt not in found:  # a copied example is not a new sample
                    found.append(prompt)
        for k, prompt in enumerate(found):
            cluster_id = None if pick.cluster is None else int(pick.cluster)
            out.append({"id": f"r{r:05d}-{j:05d}-{k}", "prompt": prompt, "round": r, "request": j,
                        "cluster": cluster_id, "fewshot": [rows[int(p)]["id"] for p in pick.positions]})
    tokens = sum(x.usage.completion_tokens for x in results)
    return _finish(ctx, r, out, GenerateSummary(
        requests=len(requests), generated=blocks, parsed=len(out), tokens=tokens, seconds=seconds,
        replayed=sum(x.replayed for x in results), failed=n_failed, endpoints=by_endpoint or None))


def vote(ctx: RunContext, r: int) -> dict:
    if (summary := done(ctx, r, Step.VOTE)) is not None:
        return summary
    from prism_agent.quality.solve import solve_requests
    from prism_agent.quality.vote import vote as vote_on

    cands = read_rows(ctx, r, Step.GENERATE)
    started = time.perf_counter()
    samples = [Sample(id=c["id"], prompt=c["prompt"], response="") for c in cands]
    bias = choice_bias(ctx)
    # as quality.solve.vote_samples, but a candidate whose solver request failed for good is not voted
    results, failed = ctx.run_async(ctx.roles["solver"].generate_settled(
        solve_requests(ctx.task, samples, ctx.cfg.votes, bias)))
    n_failed = settle(ctx.paths.round_dir(r), Step.VOTE.file, len(samples), failed, ctx.cfg.max_failed_fraction,
                      lambda i: {"id": cands[i]["id"]})
    out = []
    for c, res in zip(cands, results, strict=True):
        rec = None if res is None else vote_on(ctx.task, res.texts, ctx.cfg.votes)
        if rec is None or not rec.accepted:
            continue
        # a task answered by one of a few labels stores the label; others keep a majority solution
        response = rec.majority if ctx.task.solve_choices else rec.kept_solutions[0]
        record = rec.model_dump() | ({"choice_bias": list(bias)} if bias else {})
        out.append({**c, "response": response, "answer": rec.majority, "vote": record})
    return _finish(ctx, r, out, VoteSummary(candidates=len(cands), voted=len(out),
                                            seconds=time.perf_counter() - started, failed=n_failed))


def reject(ctx: RunContext, r: int) -> dict:
    """Featurize the voted candidates and keep those the run's strategy keeps (prismatic: nearest a sparse
    centroid; vanilla: every featurized one)."""
    if (summary := done(ctx, r, Step.REJECT)) is not None:
        return summary
    rows = read_rows(ctx, r, Step.VOTE)
    started = time.perf_counter()
    feats, kept = _featurize(ctx, rows)
    out, keep_feats = ctx.strategy.keep(ctx, r, [rows[i] for i in kept], feats)
    arr = np.stack(keep_feats).astype(np.float32) if keep_feats else np.zeros((0, feats.shape[1]), np.float32)
    ctx.paths.round_dir(r).mkdir(parents=True, exist_ok=True)
    write_atomic(ctx.paths.round_dir(r) / "reject.npy", lambda fh: np.save(fh, arr))
    return _finish(ctx, r, out, RejectSummary(voted=len(rows), featurized=len(kept), sparse=len(out),
                                              seconds=time.perf_counter() - started))


def decontaminate(ctx: RunContext, r: int) -> dict:
    if (summary := done(ctx, r, Step.DECONTAMINATE)) is not None:
        return summary
    from prism_agent.decontam.decontaminator import Counts

    rows = read_rows(ctx, r, Step.REJECT)
    started = time.perf_counter()
    samples = [Sample(id=x["id"], prompt=x["prompt"], response=x.get("response", "")) for x in rows]
    verdicts = ctx.run_async(ctx.decontaminator.check(samples)) if samples else []
    failed = {i: v.judge_raw or "judge call failed" for i, v in enumerate(verdicts) if v.judge == "failed"}
    asked = sum(v.judge != "not_asked" for v in verdicts) or 1
    n_failed = settle(ctx.paths.round_dir(r), Step.DECONTAMINATE.file, asked, failed, ctx.cfg.max_failed_fraction,
                      lambda i: {"id": rows[i]["id"]})
    counts = Counts()
    out, audit = [], []
    for row, v in zip(rows, verdicts, strict=True):
        counts.add(v)
        if v.judge == "failed":  # not checked, so not kept: recorded in decontam-failed.jsonl
            continue
        if v.dropped is None:
            out.append({**row, "decontam": {"judge": v.judge, "nearest": getattr(v.nearest, "id", None),
                                            "similarity": v.similarity}})
        else:
            audit.append(v.dropped.model_dump())
    ctx.paths.round_dir(r).mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(ctx.paths.round_dir(r) / "decontam-audit.jsonl", audit)
    return _finish(ctx, r, out, DecontamSummary(**counts.as_json(), seconds=time.perf_counter() - started,
                                                failed=n_failed))


def commit(ctx: RunContext, r: int) -> dict:
    """Append the round's clean samples (capped at the target) to the feature store, then commit them."""
    log = ctx.pool.accepted
    if any(c.round == r for c in log.commits()):
        return CommitSummary(accepted=0, total=log.count, already=True).as_json()
    rows = read_rows(ctx, r, Step.DECONTAMINATE)
    kept_ids = [x["id"] for x in read_rows(ctx, r, Step.REJECT)]
    feats = np.load(ctx.paths.round_dir(r) / "reject.npy")
    by_id = {i: feats[k] for k, i in enumerate(kept_ids)}
    rows = rows[: max(0, ctx.target - log.count)]
    reconcile(ctx)  # before opening the store: a killed commit may have left a shard past the last record
    store = ctx.feature_store()
    models = {role: g.model_id for role, g in ctx.roles.items()}
    final = [{**x, "models": models} for x in rows]
    if final:
        store.append([x["id"] for x in final], np.stack([by_id[x["id"]] for x in final]),
                     info={"kind": "accepted", "round": r})
    log.append(final, round_index=r, features=len(store))
    return CommitSummary(accepted=len(final), total=log.count).as_json()


__all__ = ["GenerationError", "cluster", "commit", "decontaminate", "generate", "measure", "prepare", "reconcile",
           "reject", "vote"]
