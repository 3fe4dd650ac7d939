"""Where prism-agent keeps downloaded models, data and cached features.

One root, `PRISM_AGENT_CACHE` or the platform's user cache directory, so a user can move or wipe it.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_root() -> Path:
    root = os.environ.get("PRISM_AGENT_CACHE") or user_cache_dir("prism-agent")
    return Path(root).expanduser()


def models_dir() -> Path:
    return cache_root() / "models"


def features_dir() -> Path:
    return cache_root() / "features"
