"""Step names and summaries (run/rounds.py): what every reader of a round relies on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from prism_agent.decontam.decontaminator import Counts
from prism_agent.run.rounds import ROUND_STEPS, SUMMARIES, DecontamSummary, Funnel, GenerateSummary, Step


def test_every_step_has_one_summary_and_round_steps_have_files():
    assert set(SUMMARIES) == set(Step) - {Step.FINISH}
    assert [s.file for s in ROUND_STEPS] == ["generate", "vote", "reject", "decontam"]  # older runs' file names
    assert f"{Step.DECONTAMINATE}" == "decontaminate" and Step("vote") is Step.VOTE


def test_decontamination_counts_fit_the_summary():
    """The decontaminator's counts are spread into the summary: a count added there must be declared here."""
    assert DecontamSummary(**Counts().as_json()).kept == 0


def test_building_is_strict_reading_is_tolerant():
    with pytest.raises(ValidationError):
        GenerateSummary(parsed=1, made_up=2)
    old = GenerateSummary.load({"requests": 2, "parsed": 1, "a_field_of_another_version": True})
    assert old.parsed == 1 and old.failed == 0


def test_funnel_from_a_rounds_last():
    last = {"generate": {"generated": 9, "parsed": 7}, "vote": {"voted": 4}, "reject": {"sparse": 2},
            "decontaminate": {"kept": 2}, "commit": {"accepted": 1, "total": 5}}
    assert Funnel.of(last).counts() == {"generated": 9, "parsed": 7, "voted": 4, "sparse": 2, "decontaminated": 2,
                                        "accepted": 1}
    assert Funnel.of(None).counts() == dict.fromkeys(Funnel.STAGES, 0)
