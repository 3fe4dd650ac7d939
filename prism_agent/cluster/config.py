"""The clustering settings moved to `prism_agent.config.cluster` (config/ holds the declarations). This name
stays only for `loop/steps.py`, which imports `ClusterConfig` from here; delete it when that import moves."""

from __future__ import annotations

from prism_agent.config.cluster import ClusterConfig

__all__ = ["ClusterConfig"]
