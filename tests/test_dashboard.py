"""The live dashboard, fed the node updates of a real-shaped round and rendered to text."""

from __future__ import annotations

from rich.console import Console

from prism_agent.ui.dashboard import Dashboard, sparkline


def test_sparkline_scales_to_the_range():
    assert sparkline([1.0, 2.0, 3.0]) == "▁▄█"
    assert sparkline([2.0, 2.0]) == "▁▁" and sparkline([]) == ""


def test_dashboard_shows_progress_funnel_vendi_and_speed():
    d = Dashboard("abc123", "nli", target=300, accepted=0, roles={})
    d.update("prepare", {"pool": 128, "accepted": 0, "target": 300, "round": 0})
    d.update("measure", {"g_vendi": 5.0, "pool": 128, "accepted": 0, "target": 300})
    d.update("cluster", {"round": 1, "last": {"cluster": {"k": 12, "sparse": 6}}})
    last = {"generate": {"generated": 20, "parsed": 17, "tokens": 2400, "seconds": 30.0}}
    d.update("generate", {"last": last})
    last = {**last, "vote": {"voted": 11}, "reject": {"sparse": 7}, "decontaminate": {"kept": 6},
            "commit": {"accepted": 6}}
    d.update("commit", {"last": last, "accepted": 6})
    d.update("measure", {"g_vendi": 5.4, "pool": 134, "accepted": 6, "target": 300})
    d.roles = {"generator": "local/smollm2-135m-instruct"}
    d.tokens = {"generator": (2400, 30.0)}
    console = Console(record=True, width=120)
    console.print(d)
    text = console.export_text()
    assert "accepted 6/300" in text and "run abc123" in text
    assert "20" in text and "17" in text and "11" in text and "6" in text  # the funnel
    assert "generated  parsed  voted  sparse  decontaminated  accepted" in text  # not glued onto the bar
    assert "G-Vendi 5.400" in text and "▁█" in text
    assert "80.0 tok/s" in text
    assert d.total["accepted"] == 6 and d.eta() != "—"
    assert "accepted 6/300" in d.lines()[0]
