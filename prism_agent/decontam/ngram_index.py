"""Stage 1: normalised word n-gram overlap with benchmark items, through a MinHash LSH index.

Items of at least n words are indexed by their n-gram sets. Under the `lsh` rule a datasketch MinHash LSH
index returns the items whose Jaccard similarity with the sample is probably ≥ the threshold; each is then
compared exactly (string n-grams, no hashes), and a sample is a match only if it truly shares an n-gram
with it. The LSH can therefore miss a match (a long sample that shares only a sentence with an item has
a low Jaccard similarity) but never invents one. Under the `exact` rule an exact table of every benchmark
n-gram finds any shared n-gram, which is the paper's literal rule.

Texts shorter than n words have no n-gram. A short benchmark item (k < n words) matches a sample that
contains all of it, word for word, while adding fewer than n words of its own: the same tolerance a
shared n-gram gives a long item (so "Question: Compute cos 150°." still matches "Compute cos 150°."),
without dropping every long problem that happens to contain a three-word item. A sample shorter than n
words cannot share an n-gram with a long item and is left to stage 2.

The index is built once per benchmark set and settings, and cached on disk under a key made of the
benchmarks' content (see `benchmarks.fingerprint`), the settings and the datasketch version.
"""

from __future__ import annotations

import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import datasketch
from datasketch import MinHash, MinHashLSH

from prism_agent.atomic import write_atomic
from prism_agent.config.decontam import DecontamConfig
from prism_agent.decontam.benchmarks import Benchmark, BenchmarkItem, fingerprint
from prism_agent.decontam.normalize import ngrams, words

INDEX_VERSION = 1
_SCHEME = "affine32"
_LSH_WEIGHTS = (0.2, 0.8)  # a missed candidate costs recall; a spurious one only an exact comparison


@dataclass(frozen=True)
class NgramMatch:
    item: BenchmarkItem
    ngram: str  # the first shared n-gram in the sample's word order (a short item: all its words)
    shared: int  # distinct n-grams shared with the item
    jaccard: float  # exact Jaccard similarity of the two n-gram sets (short item: its share of the sample)
    also: tuple[BenchmarkItem, ...] = ()  # other items sharing as many n-grams (e.g. MATH-500 inside MATH test)


def _hash32(data: bytes) -> int:
    return zlib.crc32(data)


class NgramIndex:
    def __init__(self, items: list[BenchmarkItem], cfg: DecontamConfig):
        self.n, self.rule = cfg.n, cfg.rule
        self.num_perm = cfg.num_perm
        self.items = items
        self.grams: list[frozenset[str] | None] = []
        self.short: dict[tuple[str, ...], int] = {}
        self.table: dict[str, int] = {}
        self._perms = MinHash(cfg.num_perm, hashfunc=_hash32, scheme=_SCHEME).permutations
        self.lsh = MinHashLSH(threshold=cfg.lsh_threshold, num_perm=cfg.num_perm, weights=_LSH_WEIGHTS) \
            if cfg.rule == "lsh" else None
        with (self.lsh.insertion_session() if self.lsh is not None else _nullsession()) as session:
            for i, item in enumerate(items):
                toks = words(item.text)
                if len(toks) < self.n:
                    self.grams.append(None)
                    if toks:
                        self.short.setdefault(tuple(toks), i)
                    continue
                gl = ngrams(toks, self.n)
                self.grams.append(frozenset(gl))
                if session is not None:
                    session.insert(i, self._minhash(gl), check_duplication=False)
                else:
                    for g in gl:
                        self.table.setdefault(g, i)
        self.short_lengths = sorted({len(k) for k in self.short})

    def _minhash(self, grams: list[str]) -> MinHash:
        m = MinHash(self.num_perm, hashfunc=_hash32, permutations=self._perms, scheme=_SCHEME)
        m.update_batch([g.encode("utf-8") for g in grams])
        return m

    # -- matching

    def match(self, text: str) -> NgramMatch | None:
        toks = words(text)
        return self._match_long(toks) or self._match_short(toks)

    def _match_long(self, toks: list[str]) -> NgramMatch | None:
        if len(toks) < self.n:
            return None
        gl = ngrams(toks, self.n)
        if self.lsh is not None:
            found = self.lsh.query(self._minhash(gl))
        else:
            found = {self.table[g] for g in gl if g in self.table}
        if not found:
            return None
        mine = frozenset(gl)
        shared = {i: len(mine & self.grams[i]) for i in sorted(found)}  # type: ignore[operator]
        best_shared = max(shared.values())
        if best_shared == 0:
            return None  # the LSH guessed; the exact comparison says no
        tied = [i for i, c in shared.items() if c == best_shared]
        best, theirs = tied[0], self.grams[tied[0]]
        first = next(g for g in gl if g in theirs)  # type: ignore[operator]
        return NgramMatch(self.items[best], first, best_shared, best_shared / len(mine | theirs),  # type: ignore[operator]
                          tuple(self.items[i] for i in tied[1:]))

    def _match_short(self, toks: list[str]) -> NgramMatch | None:
        size = len(toks)
        for k in self.short_lengths:
            if not k <= size < k + self.n:
                continue
            for i in range(size - k + 1):
                hit = self.short.get(tuple(toks[i : i + k]))
                if hit is not None:
                    return NgramMatch(self.items[hit], " ".join(toks[i : i + k]), 1, k / size)
        return None

    # -- cache

    @staticmethod
    def cache_key(benchmarks: list[Benchmark], cfg: DecontamConfig) -> str:
        return fingerprint(benchmarks, "ngram", INDEX_VERSION, cfg.n, cfg.rule, cfg.num_perm, cfg.lsh_threshold,
                           _LSH_WEIGHTS, _SCHEME, datasketch.__version__)

    @classmethod
    def cached(cls, benchmarks: list[Benchmark], cfg: DecontamConfig, cache_dir: Path) -> tuple[NgramIndex, bool]:
        """The index for these benchmarks and settings: loaded from `cache_dir` or built and saved there.
        Returns (index, loaded_from_cache)."""
        path = cache_dir / f"ngram-{cls.cache_key(benchmarks, cfg)[:32]}.pkl"
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    index = pickle.load(fh)
                if isinstance(index, cls):
                    return index, True
            except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
                pass  # a stale or torn cache file: rebuild it
        index = cls([it for b in benchmarks for it in b.items], cfg)
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda fh: pickle.dump(index, fh, protocol=pickle.HIGHEST_PROTOCOL))
        return index, False


class _nullsession:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
