"""The voting settings moved to `prism_agent.config.vote` (config/ holds the declarations). This name stays
only for `loop/steps.py`, which imports `CALIBRATION_ROWS` from here; delete it when that import moves."""

from __future__ import annotations

from prism_agent.config.vote import CALIBRATION_ROWS

__all__ = ["CALIBRATION_ROWS"]
