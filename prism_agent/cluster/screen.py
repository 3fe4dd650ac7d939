"""Exact nearest centroids from a bf16 screen: the product in bf16, the answer certified and rescored in fp32.

Assigning every pool row to its nearest centroid is the refit's largest cost at scale: at 1.5M rows and
15K centroids of d = 1024 it is 4.6·10¹³ flops of fp32 products (≈ 390 s on one thread here). On CPUs with
native bf16 matmuls (AVX512-BF16, AMX) the product runs ≈ 3.8× faster in bf16 (8,192 × 15,000 × 1,024 on
one Zen 5 thread: 0.64 against 2.45 s), but bf16 keeps 8 significant bits, so its argmax alone is not the
nearest centroid: on noise-dominated features half the rows have their two best centroids within 0.01.

So bf16 only screens. For unit rows x and centroids c, with x̃, c̃ their bf16 roundings and s̃ the bf16
product (fp32 accumulation, rounded once to bf16):

    |s̃ − x·c| ≤ a + b·|s̃|,  a = ‖x̃ − x‖·‖c̃‖ + ‖x‖·‖c̃ − c‖ + γ_d·‖x̃‖·‖c̃‖,  b = u / (1 − u)

(Cauchy–Schwarz for the two roundings, the standard bound γ_d = d·2⁻²⁴ / (1 − d·2⁻²⁴) for the fp32 sum in any
order, u = 2⁻⁸ for the output rounding), with the norms of the residuals measured, not assumed. If v is a
row's n-th largest s̃, n centroids score at least v − a − b·|v| in fp32, and every centroid whose s̃ is below
v − W, W = (2a + 2b·|v|) / (1 − b), scores less than that: the n nearest are among those at or above v − W.
Those few (at 1.5M: 2.5 a row on average for the nearest, 15.6 for the 8 nearest; BENCHMARKS.md,
"Clustering at scale") are rescored in fp32 and ranked; a row with 4·n + `TOP` or more of them (none of
65,536 rows there) is answered by a full fp32 product. So the answers are the fp32 nearest centroids, the
same as faiss' exact search up to fp32 rounding ties, and the cosines are fp32 products.

Used only where bf16 is native (`models/dtype.native_bf16`): without native kernels bf16 is ≈ 40× slower.
"""

from __future__ import annotations

import threading

import numpy as np

TOP = 16  # candidates kept per row by the screen beyond 4·n (a wider window falls back to a full product)
MIN_CENTROIDS = 256  # below this the fp32 product is cheap and the screen's overheads are not worth it
_SCORES_BYTES = 1 << 27  # bf16 scores held per sub-block (128 MiB): rows = this / (2·k)
_U = 2.0**-8  # unit roundoff of bf16 (8 significant bits, round to nearest)
_PAIRS = 8_192  # (row, candidate) pairs rescored per chunk, in two kept 32 MiB buffers at d = 1024
# Kept for the process's life, as the search's block buffers (`scratch.py`): on these VMs fresh memory's first
# touch costs more than the work done in it (a sub-block's product: 0.41 s fresh, 0.34 s into a kept buffer).
_kept_lock = threading.Lock()
_pair_buffers: list[np.ndarray] = []
_scores_buffer: list = []


def screen_available(k: int) -> bool:
    """Whether `CentroidScreen` pays for `k` centroids on this CPU (native bf16, enough centroids)."""
    if k < MIN_CENTROIDS:
        return False
    from prism_agent.models.dtype import native_bf16

    return native_bf16("cpu")[0]


class CentroidScreen:
    """Unit centroids held in fp32 and bf16, with what the error bound needs about their rounding."""

    def __init__(self, centroids: np.ndarray) -> None:
        import torch

        self.exact = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
        self.k, self.dim = self.exact.shape
        if self.k <= TOP:
            raise ValueError(f"a screen needs more than {TOP} centroids, got {self.k}")
        if not np.isfinite(centroids).all():
            raise ValueError("centroids must be finite")
        self.rough = self.exact.to(torch.bfloat16)
        residual = torch.linalg.vector_norm(self.rough.float() - self.exact, dim=1)
        self.residual = float(residual.max())  # max ‖c̃ − c‖
        self.rough_norm = float(torch.linalg.vector_norm(self.rough.float(), dim=1).max())  # max ‖c̃‖
        eps32 = self.dim * 2.0**-24
        self.gamma = eps32 / (1.0 - eps32)
        self.rows_per_block = max(64, min(4096, _SCORES_BYTES // (2 * self.k)))

    def width(self, x, rough, nth):
        """W of the module docstring for each row: fp32 rows `x`, their bf16 roundings `rough`, and the n-th
        largest bf16 score `nth` (torch tensors). The n nearest lie at or above nth − W."""
        import torch

        rough32 = rough.float()
        a = (torch.linalg.vector_norm(rough32 - x, dim=1) * self.rough_norm
             + torch.linalg.vector_norm(x, dim=1) * self.residual
             + self.gamma * torch.linalg.vector_norm(rough32, dim=1) * self.rough_norm)
        b = _U / (1.0 - _U)
        return (2.0 * a + 2.0 * b * nth.abs()) / (1.0 - b)

    def search(self, unit: np.ndarray, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(cosines float32, ids int64), both (rows, n), best first: each unit row's `n` nearest centroids, as
        faiss' exact `IndexFlatIP.search` gives them (zero rows: centroids 0..n−1, cosine 0)."""
        n = int(n)
        if not 1 <= n <= self.k:
            raise ValueError(f"a screen of {self.k} centroids answers 1 to {self.k} nearest, not {n}")
        ids = np.empty((unit.shape[0], n), dtype=np.int64)
        cosines = np.empty((unit.shape[0], n), dtype=np.float32)
        step = self.rows_per_block
        with _kept_lock:  # one search at a time uses the kept buffers
            for lo in range(0, unit.shape[0], step):
                cosines[lo : lo + step], ids[lo : lo + step] = self._block(unit[lo : lo + step], n)
        return cosines, ids

    def _block(self, unit: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))
        rough = x.to(torch.bfloat16)
        keep = min(self.k, 4 * n + TOP)
        scores = _scores(torch, x.shape[0], self.k)
        torch.matmul(rough, self.rough.T, out=scores)  # the product: (rows, k) bf16
        top, ids = torch.topk(scores, keep, dim=1)
        top = top.float()
        nth = top[:, n - 1]
        # A hair wider than the bound, so that rounding in computing the threshold can only add candidates.
        inside = top >= (nth - self.width(x, rough, nth) * 1.0001 - 1e-7)[:, None]
        wide = (inside[:, -1] & (keep < self.k)) | (torch.linalg.vector_norm(x, dim=1) == 0)
        inside &= ~wide[:, None]
        rows, slots = torch.nonzero(inside, as_tuple=True)
        exact = torch.full((x.shape[0], keep), -torch.inf)
        exact[rows, slots] = torch.from_numpy(_pair_products(x.numpy(), self.exact.numpy(), rows.numpy(),
                                                             ids[rows, slots].numpy()))
        exact, order = torch.sort(exact, dim=1, descending=True, stable=True)
        cosines, picked = exact[:, :n].contiguous(), torch.gather(ids, 1, order[:, :n])
        fallback = torch.nonzero(wide, as_tuple=True)[0]
        if fallback.numel():
            full = x[fallback] @ self.exact.T
            full, best = torch.sort(full, dim=1, descending=True, stable=True)
            cosines[fallback], picked[fallback] = full[:, :n], best[:, :n]
        return cosines.numpy(), picked.numpy()


def _scores(torch, rows: int, k: int):
    """A (rows, k) bf16 view of the kept scores buffer (`_SCORES_BYTES`), or a fresh array if it is larger."""
    if rows * k * 2 > _SCORES_BYTES:
        return torch.empty((rows, k), dtype=torch.bfloat16)
    if not _scores_buffer:
        _scores_buffer.append(torch.empty(_SCORES_BYTES // 2, dtype=torch.bfloat16))
    return _scores_buffer[0][: rows * k].view(rows, k)


def _pair_products(x: np.ndarray, c: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """x[rows[i]]·c[cols[i]] for each pair, gathered a chunk at a time into two kept buffers."""
    out = np.empty(rows.size, dtype=np.float32)
    if not _pair_buffers or _pair_buffers[0].shape[1] != x.shape[1]:
        _pair_buffers[:] = [np.empty((_PAIRS, x.shape[1]), dtype=np.float32) for _ in range(2)]
    left, right = _pair_buffers
    for lo in range(0, rows.size, _PAIRS):
        hi = min(rows.size, lo + _PAIRS)
        a, b = left[: hi - lo], right[: hi - lo]
        np.take(x, rows[lo:hi], axis=0, out=a, mode="clip")  # "clip": unbuffered (in range)
        np.take(c, cols[lo:hi], axis=0, out=b, mode="clip")
        np.einsum("ij,ij->i", a, b, out=out[lo:hi])
    return out


def centroid_index(unit_centroids: np.ndarray, *, gpu: bool):
    """What answers "the n nearest centroids" (an object with faiss' `search(x, n) → (cosines, ids)`): the
    bf16 screen where it pays, else faiss' exact inner-product index."""
    if not gpu and screen_available(unit_centroids.shape[0]):
        return CentroidScreen(unit_centroids)
    from prism_agent.cluster.backend import inner_product_index

    return inner_product_index(unit_centroids, gpu=gpu)
