"""A path-independent identity for a local model folder, for replay keys and manifests.

Hashing whole weight files costs seconds per GB, so the fingerprint covers config.json, the tokenizer
config, and for each weight file its name, size and the sha256 of its first and last MiB: moving or
copying a folder keeps the fingerprint, retraining or requantising changes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20
_WEIGHTS = (".safetensors", ".bin", ".gguf", ".pt")
_CONFIGS = ("config.json", "tokenizer_config.json", "generation_config.json")


def _edges(path: Path) -> bytes:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(_CHUNK)
        fh.seek(max(0, size - _CHUNK))
        tail = fh.read(_CHUNK)
    return hashlib.sha256(head + tail).digest()


def fingerprint(folder: Path, gguf: str | None = None) -> str:
    h = hashlib.sha256()
    files = [folder / gguf] if gguf else sorted(p for p in folder.iterdir() if p.suffix in _WEIGHTS)
    for name in _CONFIGS:
        p = folder / name
        if p.is_file() and not gguf:
            h.update(name.encode() + b"\0" + p.read_bytes())
    for p in files:
        h.update(f"{p.name}\0{p.stat().st_size}\0".encode() + _edges(p))
    return h.hexdigest()[:16]


def model_identity(spec: str, folder: Path, gguf: str | None = None) -> str:
    """What names a model in replay keys: its pinned name, else the fingerprint of its files."""
    from prism_agent.models.registry import PINNED

    return spec if spec in PINNED else fingerprint(folder, gguf)
