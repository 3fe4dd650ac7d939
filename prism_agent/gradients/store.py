"""On-disk feature store: float32 shards with their ids, appendable, resumable, read by memmap.

Layout of a store directory::

    manifest.json              dim, dtype and the featurizer settings that produced the rows
    shard-000000.info.json     optional: what the writer recorded (rows consumed, skipped ...)
    shard-000000.ids.jsonl     one JSON string (the sample id) per line
    shard-000000.npy           float32 array (rows, dim); its presence marks the shard complete

A shard is committed by writing its info and ids, then its array, each to a temporary name, fsynced and renamed.
A shard whose `.npy` is missing (a kill between the two renames) is incomplete and removed on open, so
readers never see half a shard and a resumed writer redoes exactly that shard. Nothing here holds more
than one shard in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prism_agent.atomic import fsync_dir, write_atomic
from prism_agent.errors import BadInputError
from prism_agent.jsonl import read_jsonl

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Shard:
    index: int
    array_path: Path
    ids_path: Path
    rows: int

    def features(self) -> np.ndarray:
        """The shard's rows as a read-only memmap (float32, (rows, dim))."""
        return np.load(self.array_path, mmap_mode="r")

    def ids(self) -> list[str]:
        return list(read_jsonl(self.ids_path, "strict"))

    def info(self) -> dict[str, Any]:
        """What the writer recorded with the shard (e.g. rows consumed, rows skipped)."""
        path = self.ids_path.with_name(f"shard-{self.index:06d}.info.json")
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


class FeatureStore:
    """A directory of feature shards for one featurizer configuration.

    `meta` describes how the rows were made (featurizer, proxy, seed, dim ...). Opening an existing
    store with different `meta` is refused, so features of two configurations never mix.
    """

    def __init__(self, root: Path, dim: int, meta: dict[str, Any]):
        self.root = Path(root)
        self.dim = int(dim)
        self.meta = dict(meta)
        self._shards: list[Shard] = []
        self._scan()

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | Path, *, dim: int, meta: dict[str, Any]) -> FeatureStore:
        """Create the store, or reopen it when its manifest matches `dim` and `meta`."""
        root = Path(root)
        manifest = {"format": 1, "dim": int(dim), "dtype": "float32", "meta": meta}
        path = root / MANIFEST
        if path.exists():
            found = json.loads(path.read_text(encoding="utf-8"))
            # Compare through JSON so tuples/lists and int/float spellings do not cause false refusals.
            if json.loads(json.dumps(manifest)) != found:
                raise BadInputError(
                    f"feature store {root} was made with other settings "
                    f"(found {json.dumps(found.get('meta'))}); use another --features-dir or delete it"
                )
        else:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BadInputError(f"cannot create feature store {root}: {exc.strerror}") from None
            write_atomic(path, lambda fh: fh.write(json.dumps(manifest, indent=2).encode()))
        return cls(root, dim, meta)

    @classmethod
    def load(cls, root: str | Path) -> FeatureStore:
        """Open an existing store for reading, whatever its settings."""
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise BadInputError(f"{root} is not a feature store (no {MANIFEST})")
        found = json.loads(path.read_text(encoding="utf-8"))
        return cls(root, found["dim"], found.get("meta", {}))

    def _scan(self) -> None:
        self._shards = []
        for ids_path in sorted(self.root.glob("shard-*.ids.jsonl")):
            index = int(ids_path.name.split(".")[0].split("-")[1])
            array_path = self.root / f"shard-{index:06d}.npy"
            if not array_path.exists():  # killed between the renames: not committed
                ids_path.unlink()
                ids_path.with_name(f"shard-{index:06d}.info.json").unlink(missing_ok=True)
                continue
            rows = np.load(array_path, mmap_mode="r").shape[0]
            self._shards.append(Shard(index, array_path, ids_path, rows))
        for tmp in self.root.glob("*.tmp"):
            tmp.unlink()
        expected = list(range(len(self._shards)))
        if [s.index for s in self._shards] != expected:
            raise BadInputError(f"feature store {self.root} has a gap in its shard numbering")

    # ----------------------------------------------------------------- reading
    @property
    def shards(self) -> list[Shard]:
        return list(self._shards)

    def __len__(self) -> int:
        return sum(s.rows for s in self._shards)

    def ids(self) -> list[str]:
        out: list[str] = []
        for shard in self._shards:
            out.extend(shard.ids())
        return out

    def iter_blocks(self, rows: int = 65536) -> Iterator[np.ndarray]:
        """Yield consecutive row blocks of at most `rows` rows (memmap slices), without ids."""
        for shard in self._shards:
            feats = shard.features()
            for start in range(0, feats.shape[0], rows):
                yield feats[start : start + rows]

    def take(self, positions: Sequence[int]) -> np.ndarray:
        """Gather rows by global position (0-based across shards) into a new float32 array."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(positions), self.dim), dtype=np.float32)
        starts = np.cumsum([0] + [s.rows for s in self._shards])
        which = np.searchsorted(starts, positions, side="right") - 1
        if len(positions) and (positions.min() < 0 or positions.max() >= starts[-1]):
            raise IndexError("feature position out of range")
        for k in np.unique(which):
            sel = np.nonzero(which == k)[0]
            out[sel] = self._shards[k].features()[positions[sel] - starts[k]]
        return out

    # ----------------------------------------------------------------- writing
    def append(self, ids: Sequence[str], features: np.ndarray, info: dict[str, Any] | None = None) -> Shard:
        """Commit one shard atomically and return it. `info` (small, JSON) is kept with the shard."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"expected features of shape (n, {self.dim}), got {features.shape}")
        if len(ids) != features.shape[0]:
            raise ValueError("ids and features differ in length")
        index = len(self._shards)
        ids_path = self.root / f"shard-{index:06d}.ids.jsonl"
        array_path = self.root / f"shard-{index:06d}.npy"
        payload = "".join(json.dumps(str(i)) + "\n" for i in ids).encode("utf-8")
        if info is not None:
            info_bytes = json.dumps(info).encode()
            write_atomic(self.root / f"shard-{index:06d}.info.json", lambda fh: fh.write(info_bytes))
        write_atomic(ids_path, lambda fh: fh.write(payload))
        write_atomic(array_path, lambda fh: np.save(fh, features))
        shard = Shard(index, array_path, ids_path, features.shape[0])
        self._shards.append(shard)
        return shard

    def truncate(self, rows: int) -> int:
        """Drop whole shards from the end until at most `rows` remain; return how many rows were dropped.

        The generation loop appends one shard per committed round, so a kill between the feature append
        and the sample commit leaves exactly one surplus shard, which resume removes here."""
        dropped = 0
        while self._shards and len(self) > rows:
            shard = self._shards[-1]
            if len(self) - shard.rows < rows:
                raise BadInputError(f"feature store {self.root}: cannot cut at row {rows} inside shard {shard.index}")
            info = shard.ids_path.with_name(f"shard-{shard.index:06d}.info.json")
            for path in (shard.array_path, shard.ids_path, info):  # the array first: it marks a shard complete
                path.unlink(missing_ok=True)
            fsync_dir(self.root)
            self._shards.pop()
            dropped += shard.rows
        return dropped
