"""Defaults the declarations need and the model registry agrees with (config/ imports nothing above
`errors`, so the name lives here and `models/registry.py` pins an artifact under it; a test checks that)."""

from __future__ import annotations

DEFAULT_PROXY = "smollm2-135m-instruct"  # the proxy, and the embedded backends' model
