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


def test_dashboard_shows_one_line_per_endpoint_of_a_role_with_several(tmp_path):
    """A role over two endpoints: the panel shows each endpoint's calls, failures and failovers, prefill mode
    and parse yield, read from the run directory's files as `status` reads them (`run.status.endpoint_info`);
    an endpoint nothing is known about yet shows as waiting. A role with one endpoint adds no lines."""
    import json

    from prism_agent.generators.prefill import PrefillCache
    from prism_agent.run.events import EventLog
    from prism_agent.run.paths import RunPaths
    from prism_agent.run.rounds import GenerateSummary
    from prism_agent.run.status import endpoint_info

    paths = RunPaths(tmp_path)
    a, b, c = "http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1", "http://127.0.0.1:8003/v1"
    EventLog(paths.events).emit("usage", round=1, roles={}, backend_errors={"generator": {
        "retries": 2, "failures": 0, "reasons": {}, "endpoints": {
            a: {"requests": 9, "failures": 3, "failovers": 3, "downs": 1},
            b: {"requests": 12, "failures": 0, "failovers": 0, "downs": 0}}}})
    paths.round_dir(1).mkdir(parents=True)
    summary = GenerateSummary(requests=4, endpoints={a: {"completions": 6, "parsed": 3},
                                                     b: {"completions": 10, "parsed": 8}})
    (paths.round_dir(1) / "generate.json").write_text(json.dumps(summary.as_json()))
    cache = PrefillCache(paths.root / "endpoints.json")
    cache.put(a, "smollm2", "none")
    cache.put(b, "smollm2", "vllm")

    d = Dashboard("abc123", "nli", target=300, accepted=0, roles={})
    console = Console(record=True, width=140)
    console.print(d)
    assert "127.0.0.1" not in console.export_text()  # no role with several endpoints: no endpoint lines
    d.endpoint_urls = [a, b, c]
    d.endpoints = endpoint_info(tmp_path)
    console = Console(record=True, width=140)
    console.print(d)
    text = console.export_text()
    assert f"{a}  9 calls · 3 failed · 3 moved · down 1× · prefill none · parsed 3/6 (50%)" in text
    assert f"{b}  12 calls · 0 failed · 0 moved · prefill vllm · parsed 8/10 (80%)" in text
    assert f"{c}  no calls yet" in text


def test_endpoint_lines_are_for_roles_with_several_endpoints():
    from prism_agent.cli.run_cmd import _several_endpoints
    from prism_agent.config.backends import parse_roles
    from prism_agent.config_files import build_run_config

    two = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
    plain = build_run_config(None, {"task": "nli", "target": 10})
    cfg = plain.model_copy(update={"roles": parse_roles({
        "generator": {"backend": "openai", "model": "smollm2", "base_url": two},
        "solver": {"backend": "openai", "model": "smollm2", "base_url": "http://127.0.0.1:8003/v1"}})})
    assert _several_endpoints(cfg) == two  # the solver's single endpoint adds no line
    assert _several_endpoints(plain) == []
