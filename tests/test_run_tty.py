"""The live dashboard of `prism-agent run` on a real terminal: a tiny real NLI run (the embedded 135M model in
every role, real SNLI seeds, the first 200 SNLI test items as the benchmark, as in test_reliability_kill) in
a pseudo-terminal, without `--plain`, so that rich's `Live` redraws the panel of `prism_agent/ui/dashboard.py`
in place. Checked: the escapes of an in-place redraw, the cursor shown again at the end, the final frame's
pieces against `status --json`, and Ctrl-C on the dashboard (exit 130, terminal restored, the resume command).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.limits import hang_limit
from tests.support.tiny import benchmark_head

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COLUMNS, LINES = 120, 40
TINY = ("seed_sample = 16\nper_round = 4\npatience = 30\n"
        "[cluster]\nk_min = 4\nsparse_ratio = 0.9\n"
        "[featurizer]\nrank_in = 16\nrank_out = 16\n")
# CSI (cursor moves, erase, colours, ?25l/?25h), OSC (titles, links) and charset selection
ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]")
HIDE, SHOW = b"\x1b[?25l", b"\x1b[?25h"
UP_ERASE = b"\x1b[1A\x1b[2K"  # Live moving up over its last frame, line by line, before drawing the next


def tiny_config(tmp: Path) -> str:
    bench = benchmark_head(tmp, "snli-test")
    cfg = tmp / "run.toml"
    cfg.write_text(f'benchmarks = ["snli200={bench}"]\n' + TINY)
    return str(cfg)


def run_args(tmp: Path, target: int = 2) -> list[str]:
    return ["run", "--task", "nli", "--target", str(target), "--config", tiny_config(tmp),
            "--run-dir", str(tmp / "run")]


def plain(raw: bytes) -> str:
    return ANSI.sub(b"", raw).decode("utf-8", "replace")


def screen(raw: bytes, columns: int = COLUMNS) -> list[str]:
    """What the terminal shows at the end: enough of an xterm for rich's Live (which uses CR, LF, cursor up
    and erase line; colours and cursor visibility do not change the text), with xterm's autowrap: a character
    written after the last column goes to the next line. Every character is one column wide here."""
    kept = ANSI.sub(lambda m: m.group(0) if re.fullmatch(rb"\x1b\[\d*[AK]", m.group(0)) else b"", raw)
    text = kept.decode("utf-8", "replace")  # an erase can land inside a multi-byte character (CI saw one)
    rows: list[list[str]] = [[]]
    row = col = 0
    for piece in re.split(r"(\x1b\[\d*[AK]|[\r\n])", text):
        if piece == "\r":
            col = 0
        elif piece == "\n":
            row += 1
        elif piece.startswith("\x1b["):
            if piece.endswith("A"):
                row, col = max(0, row - int(piece[2:-1] or 1)), min(col, columns - 1)
            elif piece[2:-1] == "2":
                rows[row] = []
            else:
                del rows[row][col:]
        else:
            for ch in piece:
                if col >= columns:  # autowrap
                    row, col = row + 1, 0
                rows.extend([] for _ in range(row + 1 - len(rows)))
                line = rows[row]
                line.extend(" " * (col + 1 - len(line)))
                line[col] = ch
                col += 1
        rows.extend([] for _ in range(row + 1 - len(rows)))
    return ["".join(r).rstrip() for r in rows]


@dataclass
class TtyRun:
    rc: int
    raw: bytes

    @property
    def text(self) -> str:
        return plain(self.raw)


def run_on_tty(args: list[str], *, timeout: float = hang_limit(480), ctrl_c_after: str | None = None) -> TtyRun:
    """`python -m prism_agent.cli.app ARGS` with stdin, stdout and stderr on a 120×40 pseudo-terminal (its
    controlling terminal); everything it writes is read until it exits. With `ctrl_c_after`, Ctrl-C is typed
    once that text shows on the screen."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(LINES))
    argv = [sys.executable, "-m", "prism_agent.cli.app", *args]
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, never return into pytest
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
            os.chdir(ROOT)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    raw, typed, done = bytearray(), False, False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError as exc:  # Linux: EIO once the child has closed its side of the terminal
                if exc.errno != errno.EIO:
                    raise
                chunk = b""
            if not chunk:
                done = True
                break
            raw += chunk
            if ctrl_c_after and not typed and ctrl_c_after in plain(bytes(raw[-20000:])):
                os.write(fd, b"\x03")  # the terminal's line discipline turns it into SIGINT
                typed = True
    finally:
        if not done:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert done, f"no exit within {timeout:g} s:\n{plain(bytes(raw))[-3000:]}"
    assert ctrl_c_after is None or typed, f"{ctrl_c_after!r} never showed:\n{plain(bytes(raw))[-3000:]}"
    return TtyRun(os.waitstatus_to_exitcode(status), bytes(raw))


def status_of(run_dir: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "prism_agent.cli.app", "status", str(run_dir), "--json"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def last_frame(text: str) -> list[str]:
    start = text.rindex("╭")
    return text[start:text.index("╯", start) + 1].splitlines()


def check_terminal_restored(raw: bytes) -> None:
    assert raw.count(HIDE) >= 1, "Live never hid the cursor: the dashboard was not live"
    assert raw.rfind(SHOW) > raw.rfind(HIDE), "the cursor was left hidden"


def test_live_dashboard_redraws_in_place_and_ends_with_the_final_counts(tmp_path):
    args = run_args(tmp_path)
    run_dir = tmp_path / "run"
    r = run_on_tty(args)
    text = r.text
    assert r.rc == 0, text[-3000:]
    assert "Traceback" not in text and "error:" not in text

    run_id = re.search(r"^run (\w+) in .*: task nli, target 2\r?$", text, re.M).group(1)
    title = f"prism-agent · nli · run {run_id}"
    assert text.count(title) >= 3 and r.raw.count(UP_ERASE) >= 10  # one panel, redrawn in place many times
    check_terminal_restored(r.raw)

    info = status_of(run_dir)
    assert info["accepted"] == 2 and info["complete"] and info["stop_reason"] == "target reached", info
    rows = [json.loads(x) for x in (run_dir / "pool" / "accepted.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len({row["id"] for row in rows}) == 2

    frame = last_frame(text)
    body = "\n".join(frame)
    shown = screen(r.raw)  # redrawn in place: the screen holds the final frame once, nothing of earlier ones
    *lines, done = [ln for ln in shown if ln.strip()]
    top = next(i for i, ln in enumerate(lines) if ln.startswith("╭"))
    assert lines[0] == f"run {run_id} in {run_dir}: task nli, target 2" and lines[top:] == frame, "\n".join(shown)
    compute = "".join(lines[1:top])  # the header's second line (a narrow terminal may wrap it)
    assert re.fullmatch(r"compute: featurizer (bfloat16|float32) \(auto: .+\); generator, solver, judge "
                        r"(bfloat16|float32)", compute), compute
    assert re.search(r"│ compute: featurizer (bfloat16|float32) · generator (bfloat16|float32), solver ", body), body
    assert re.fullmatch(rf"done in \d+ s: 2/2 accepted in {re.escape(str(run_dir))}", done), done
    assert title in frame[0]
    assert all(len(ln) == COLUMNS and ln[0] in "╭│╰" and ln[-1] in "╮│╯" for ln in frame), body  # not garbled
    assert re.search(r"│ round \d+  step: finish  accepted 2/2  ETA ", body), body
    assert "━" * 60 in body  # the progress bar, full
    assert "generated  parsed  voted  sparse  decontaminated  accepted" in body  # the funnel's header, whole
    funnel = {ln.strip("│ ").split("  ")[0]: [int(n) for n in ln.strip("│ ").split()[-6:]]
              for ln in frame if ln.startswith(("│ this round ", "│ run "))}
    assert funnel["run"][-1] == 2 and funnel["run"] == sorted(funnel["run"], reverse=True), funnel
    assert funnel["this round"][-1] >= 1, funnel
    gv = re.search(r"G-Vendi (\d+\.\d{3})  ([▁▂▃▄▅▆▇█]+)   pool (\d+)", body)
    assert gv, body
    assert gv.group(1) == f"{info['g_vendi']:.3f}" and int(gv.group(3)) == info["pool"]
    assert len(gv.group(2)) == len(info["g_vendi_history"])  # one mark per measurement
    for role in ("generator", "solver"):  # both ran: a rate each
        assert re.search(rf"│ {role} +\S+ +\d+\.\d tok/s ", body), body
    assert re.search(r"│ judge +\S+ +(\d+\.\d tok/s|—) ", body), body
    assert "stopped: target reached" in body


def test_ctrl_c_on_the_live_dashboard_restores_the_terminal_and_says_how_to_resume(tmp_path):
    args = run_args(tmp_path)
    r = run_on_tty(args, ctrl_c_after="round 1")  # round 1's clustering is done: its generation is running
    text = r.text
    assert r.rc == 130, text[-3000:]
    assert "Traceback" not in text
    check_terminal_restored(r.raw)
    # The message stays on the screen, above the final dashboard: no redraw erased it. (The terminal's own
    # "^C" echo after the full-width panel wraps to the next line and puts Live one line off, so one stale
    # panel line may stay above the message; rich's doing, not checked here.)
    shown = screen(r.raw)
    said = "SIGINT: stopping after the current step (at most 10 s; again to stop now)"
    assert said in shown, "\n".join(shown)
    top = len(shown) - 1 - shown[::-1].index(last_frame(text)[0])
    assert shown.index(said) < top and shown[top:top + len(last_frame(text))] == last_frame(text), "\n".join(shown)
    assert r.raw.rfind(SHOW) < r.raw.rfind(b"To resume:")  # the dashboard had stopped before the last words
    lines = [ln.strip() for ln in text.splitlines()]
    i = next(i for i, ln in enumerate(lines) if ln.endswith("To resume:"))
    assert re.fullmatch(r"stopped; [01]/2 accepted and committed\. To resume:", lines[i]), lines[i]
    assert shlex.split(lines[i + 1]) == [sys.executable, "-m", "prism_agent.cli.app", *args]
    info = status_of(tmp_path / "run")
    assert not info["complete"] and info["accepted"] < 2, info
