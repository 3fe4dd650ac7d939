"""Quality gate: majority voting over N solver completions, with answers grouped by mathematical
equivalence (math) or by label (NLI)."""

from __future__ import annotations

from prism_agent.config.vote import VoteConfig
from prism_agent.quality.equivalence import group_math_answers, math_equivalent
from prism_agent.quality.solve import solve_requests, vote_samples
from prism_agent.quality.vote import VoteRecord, vote

__all__ = ["VoteConfig", "VoteRecord", "group_math_answers", "math_equivalent", "solve_requests",
           "vote", "vote_samples"]
