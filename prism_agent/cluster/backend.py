"""faiss plumbing shared by fitting and assignment: thread count and GPU placement.

Kept in one place so both phases honour the same `threads`/`device` settings, and so the thread count is
restored afterwards (faiss' OpenMP setting is process-wide; a library must not leave it changed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import faiss

from prism_agent.config.cluster import Device
from prism_agent.errors import BadInputError


def gpu_count() -> int:
    """GPUs usable by this faiss build (0 for faiss-cpu, which has no `get_num_gpus`)."""
    get = getattr(faiss, "get_num_gpus", None)
    if get is None or not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(get())
    except RuntimeError:
        return 0


def use_gpu(device: Device) -> bool:
    if device == "cpu":
        return False
    available = gpu_count() > 0
    if device == "gpu" and not available:
        raise BadInputError("device 'gpu' asked for, but this faiss build sees no GPU (install faiss-gpu)")
    return available


def torch_cuda_device(device: Device) -> str | None:
    """"cuda" when seeding should run on a GPU through torch (a core dependency), else None."""
    if device == "cpu":
        return None
    try:
        import torch
    except ImportError:
        return None
    return "cuda" if torch.cuda.is_available() else None


@contextlib.contextmanager
def faiss_threads(threads: int | None) -> Iterator[None]:
    """Limit faiss' OpenMP threads, and NumPy's BLAS threads where threadpoolctl is installed (seeding)."""
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(threads))
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            limits = contextlib.nullcontext()
        else:
            limits = threadpool_limits(limits=int(threads), user_api="blas")
        with limits:
            yield
    finally:
        faiss.omp_set_num_threads(before)


def inner_product_index(centroids, *, gpu: bool) -> faiss.Index:
    """An exact inner-product index over (already unit-length) centroids."""
    index = faiss.IndexFlatIP(int(centroids.shape[1]))
    if gpu:
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
        index.referenced_resources = res  # keep the resources alive as long as the index
    index.add(centroids)
    return index
