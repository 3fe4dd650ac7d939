"""Real OpenAI-compatible servers on 127.0.0.1 for tests: started as subprocesses, polled until they
serve `/v1/models`, stopped by PID (their whole process group)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from prism_agent.models.dtype import resolve_dtype
from tests.support.limits import hang_limit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    model: str
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _start(cmd: list[str], port: int, model: str, log: Path, ready_s: float, env: dict | None = None,
           headers: dict | None = None) -> Server:
    fh = log.open("w")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    server = Server(proc, port, model, log)
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); log:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2, headers=headers).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"server not ready in {ready_s} s; log:\n{log.read_text()[-3000:]}")


def start_llamacpp(gguf: Path, log: Path, alias: str = "smollm2", api_key: str | None = None) -> Server:
    """llama.cpp's server: one choice per call whatever n is, requests served one at a time. With `api_key`
    every request must carry it (passed by environment, so it shows in no process listing). Started through
    our launcher, which keeps it off the AMX weight buffer that crashes it on Sapphire Rapids."""
    port = free_port()
    cmd = [sys.executable, "-m", "prism_agent.models.llamacpp_server", "--model", str(gguf), "--model_alias", alias,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1",
           "--n_threads_batch", "1"]
    env = {"API_KEY": api_key} if api_key else None
    server = _start(cmd, port, alias, log, ready_s=60, env=env, headers=_bearer(api_key))
    return server


def _bearer(api_key: str | None) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def start_vllm(folder: Path, log: Path, alias: str = "smollm2") -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
           "--served-model-name", alias, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
           "--max-model-len", "2048", "--dtype", resolve_dtype("auto", "cpu").name]
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    return _start(cmd, port, alias, log, ready_s=hang_limit(240), env=env)
