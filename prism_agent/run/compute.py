"""What a run computes in (the featurizer's and each embedded role's dtype, with the reasons), as shown in its
header and dashboard. Apart from `run/dtypes.py`, which decides it, so that holding one imports no torch."""

from __future__ import annotations

from pydantic import BaseModel


class ComputeDtypes(BaseModel):
    """What a run computes in, for its header and dashboard."""

    featurizer: str
    featurizer_reason: str
    roles: dict[str, tuple[str, str]]  # embedded role → (dtype, reason)
    notes: list[str] = []

    def header(self) -> str:
        """One line: `compute: featurizer float32 (auto: …); generator, solver, judge float32 (auto: …)`."""
        parts = [f"featurizer {self.featurizer} ({self.featurizer_reason})"]
        groups: dict[tuple[str, str], list[str]] = {}
        for role, choice in self.roles.items():
            groups.setdefault(choice, []).append(role)
        for (name, reason), roles in groups.items():
            parts.append(f"{', '.join(roles)} {name}" + ("" if reason == self.featurizer_reason else f" ({reason})"))
        return "compute: " + "; ".join(parts)

    def short(self) -> str:
        """The dashboard's line: dtypes only."""
        roles = ", ".join(f"{r} {n}" for r, (n, _) in self.roles.items())
        return f"featurizer {self.featurizer}" + (f" · {roles}" if roles else "")
