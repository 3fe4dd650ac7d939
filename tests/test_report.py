"""`prism-agent report`: collecting a real run directory (checked-in fixtures made by the real loop), the
page and PNGs for one and two runs, bad input, and the page rendering in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from prism_agent.cli.app import main
from prism_agent.report import collect_run, write_report
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "data" / "report-run"
FIXTURE_2 = ROOT / "tests" / "data" / "report-run-seed1"
PNGS = ("gvendi.png", "clusters.png", "funnel.png", "rejections.png", "roles.png")
CHROMIUM = Path("/usr/bin/chromium")


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _step_total(run: Path, step: str, field: str) -> int:
    return sum(json.loads(p.read_text())[field] for p in sorted(run.glob(f"rounds/round-*/{step}.json")))


def _cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- collecting ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", [FIXTURE, FIXTURE_2], ids=["seed0", "seed1"])
def test_collect_matches_the_run_files(run):
    rep = collect_run(run)
    commits = _lines(run / "pool" / "commits.jsonl")
    accepted_rows = _lines(run / "pool" / "accepted.jsonl")
    f = rep.funnel
    assert f.rounds == len(commits) == len({c["round"] for c in commits})
    assert f.accepted == commits[-1]["count"] == len(accepted_rows) == rep.facts["accepted"]
    assert f.generated == _step_total(run, "generate", "generated")
    assert f.parsed == _step_total(run, "generate", "parsed")
    assert f.voted == _step_total(run, "vote", "voted")
    assert f.featurized == _step_total(run, "reject", "featurized")
    assert f.sparse == _step_total(run, "reject", "sparse") == _step_total(run, "decontam", "total")
    assert f.decontaminated == _step_total(run, "decontam", "kept")
    assert f.dropped_judge == _step_total(run, "decontam", "dropped_judge")
    num_new = json.loads((run / "manifest.json").read_text())["config"]["generation"]["num_new"]
    assert f.asked == _step_total(run, "generate", "requests") * num_new
    # every candidate is either accepted or dropped for exactly one recorded reason
    dropped = dict(f.rejections())
    assert f.generated - sum(v for k, v in dropped.items() if not k.startswith("unparsed")) == f.accepted

    measures = [e for e in _lines(run / "events.jsonl") if e["kind"] == "measure"]
    assert rep.g_vendi == sorted({e["pool"]: e["g_vendi"] for e in measures}.items())
    assert rep.g_vendi[-1] == (rep.facts["pool"], rep.facts["g_vendi"])

    (cluster_dir,) = sorted((run / "clusters").glob("round-*"))
    record = json.loads((cluster_dir / "round.json").read_text())
    labels = np.load(cluster_dir / "labels.npy")
    c = rep.clusters
    assert (c.round, c.k, c.n) == (record["round"], record["k"], record["n"])
    assert c.sizes == np.bincount(labels, minlength=record["k"]).tolist()
    assert sum(c.sparse) == record["sparse"]["count"] and c.threshold == record["sparse"]["threshold"]
    assert all(s < c.threshold for s, sp in zip(c.sizes, c.sparse, strict=True) if sp)

    roles = {u.role: u for u in rep.roles}
    assert set(roles) == {"generator", "solver", "judge"}
    assert roles["generator"].tokens == _step_total(run, "generate", "tokens")
    assert roles["generator"].busy_s == pytest.approx(_step_total(run, "generate", "seconds"), abs=1e-2)
    assert roles["solver"].busy_s == pytest.approx(_step_total(run, "vote", "seconds"), abs=1e-2)
    assert roles["judge"].busy_s == pytest.approx(_step_total(run, "decontam", "seconds"), abs=1e-2)
    assert roles["solver"].tokens is None and roles["generator"].source == "step timings"
    assert roles["generator"].model == accepted_rows[0]["models"]["generator"]
    assert not (run / "features").exists()  # the report never needs the feature store


def test_round_events_stand_in_for_missing_round_files(tmp_path):
    run = shutil.copytree(FIXTURE, tmp_path / "run")
    shutil.rmtree(run / "rounds")
    assert collect_run(run).funnel == collect_run(FIXTURE).funnel


def test_usage_events_are_preferred_to_step_timings(tmp_path):
    run = shutil.copytree(FIXTURE, tmp_path / "run")
    rounds = sorted({c["round"] for c in _lines(run / "pool" / "commits.jsonl")})
    with (run / "events.jsonl").open("a") as fh:
        for r in rounds:
            roles = {role: {"model": f"m-{role}", "tokens": 10 * r, "busy_s": 1.5, "calls": 2}
                     for role in ("generator", "solver", "judge")}
            fh.write(json.dumps({"t": 0, "kind": "usage", "round": r, "roles": roles}) + "\n")
    roles = {u.role: u for u in collect_run(run).roles}
    for role in ("generator", "solver", "judge"):
        u = roles[role]
        assert (u.tokens, u.busy_s, u.calls, u.model) == (10 * sum(rounds), 1.5 * len(rounds), 2 * len(rounds),
                                                          f"m-{role}")
        assert u.source == "usage events"


def test_a_run_with_nothing_recorded_says_so(tmp_path, capsys):
    """A run directory whose loop never got past its manifest: every section reads "not recorded"."""
    run = tmp_path / "fresh"
    run.mkdir()
    shutil.copy(FIXTURE / "manifest.json", run / "manifest.json")
    rep = collect_run(run)
    assert rep.funnel is None and rep.clusters is None and rep.g_vendi == []
    assert all(u.source == "not recorded" for u in rep.roles)
    code, _, err = _cli(capsys, "report", run, "--out", tmp_path / "out")
    assert code == 0, err
    page = (tmp_path / "out" / "index.html").read_text()
    assert page.count("not recorded") >= 5 and "data:image/png" not in page
    assert not list((tmp_path / "out").glob("*.png"))


# ---- the command ---------------------------------------------------------------------------------------------


def _check_page(out: Path) -> str:
    page = (out / "index.html").read_text()
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"[^>]*data-file="([^"]+)"', page)
    assert sorted(name for _, name in uris) == sorted(PNGS)
    for data, name in uris:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and png == (out / name).read_bytes()
    assert "http://" not in page and "https://" not in page  # nothing to fetch: works offline, alone
    return page


def test_cli_one_run(tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, err = _cli(capsys, "report", FIXTURE, "--out", out)
    assert code == 0, err
    assert str(out / "index.html") in stdout.replace("\n", "")
    page = _check_page(out)
    facts = json.loads((out / "summary.json").read_text())[0]["facts"]
    for key in ("task", "target", "accepted", "rounds", "stop_reason"):
        assert f">{facts[key]}<" in page
    assert f"{facts['g_vendi']:.3f}" in page


def test_cli_two_runs_give_two_lines(tmp_path, capsys):
    out = tmp_path / "report"
    code, _, err = _cli(capsys, "report", FIXTURE, FIXTURE_2, "--out", out)
    assert code == 0, err
    _check_page(out)
    summary = json.loads((out / "summary.json").read_text())
    assert [r["name"] for r in summary] == ["report-run", "report-run-seed1"]
    for r, run in zip(summary, (FIXTURE, FIXTURE_2), strict=True):
        assert [tuple(p) for p in r["g_vendi"]] == collect_run(run).g_vendi and len(r["g_vendi"]) >= 2
    assert summary[0]["g_vendi"] != summary[1]["g_vendi"]


def test_runs_with_the_same_name_are_told_apart(tmp_path):
    a = shutil.copytree(FIXTURE, tmp_path / "a" / "run")
    b = shutil.copytree(FIXTURE_2, tmp_path / "b" / "run")
    _, reports = write_report([a, b], tmp_path / "out")
    assert [r.name for r in reports] == ["a/run", "b/run"]


def test_graph_kind_joins_the_legend(tmp_path):
    run = shutil.copytree(FIXTURE, tmp_path / "vanilla-run")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["graph"] = "vanilla"
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert collect_run(run).name == "vanilla-run (vanilla)"


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    cases = {
        "no such run directory": ["report", tmp_path / "missing", "--out", tmp_path / "o1"],
        "not a prism-agent run directory": ["report", not_a_run, "--out", tmp_path / "o2"],
        "is not a directory": ["report", a_file, "--out", tmp_path / "o3"],
        "is a file": ["report", FIXTURE, "--out", a_file],
        "cannot create the folder": ["report", FIXTURE, "--out", a_file / "sub"],
        "given twice": ["report", FIXTURE, FIXTURE, "--out", tmp_path / "o4"],
    }
    for expected, args in cases.items():
        code, _, err = _cli(capsys, *args)
        assert code == 2, (expected, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and expected in err, err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()  # nothing written on bad input


# ---- in a real browser ----------------------------------------------------------------------------------------


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        if os.environ.get("PRISM_AGENT_NO_BROWSER") == "1":
            pytest.skip("PRISM_AGENT_NO_BROWSER=1: no headless browser check")
        pytest.fail("headless Chromium is needed to check the report page: apt-get install -y chromium "
                    "(or set PRISM_AGENT_NO_BROWSER=1 to skip this test)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chromium-profile'}"]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=180)


def test_page_renders_in_headless_chromium(tmp_path, capsys):
    out = tmp_path / "report"
    code, _, err = _cli(capsys, "report", FIXTURE, FIXTURE_2, "--out", out)
    assert code == 0, err
    # the page alone, in a folder without its PNGs, plus a probe script that records whether every image decoded
    alone = tmp_path / "alone"
    alone.mkdir()
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
             "document.body.dataset.images = imgs.length; document.body.dataset.decoded = "
             "imgs.filter(i => i.complete && i.naturalWidth > 0).length; });</script></body>")
    page = (out / "index.html").read_text().replace("</body>", probe)
    (alone / "index.html").write_text(page)
    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", (alone / "index.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-images="{len(PNGS)}"' in dom.stdout and f'data-decoded="{len(PNGS)}"' in dom.stdout, \
        re.findall(r"<body[^>]*>", dom.stdout)
    assert dom.stdout.count('src="data:image/png;base64,') == len(PNGS)

    shot = tmp_path / "shot.png"
    r = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", (out / "index.html").as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1200, 2000)
        pixels = np.asarray(img.convert("RGB"))
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    not_white = (pixels < 245).any(axis=2).mean()
    assert len(colours) > 50 and 0.02 < not_white < 0.9, (len(colours), not_white)  # drawn, not blank
