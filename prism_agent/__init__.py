"""prism-agent: gradient-diverse synthetic reasoning data (Prismatic Synthesis and G-Vendi)."""

from __future__ import annotations

__version__ = "0.1.0"
