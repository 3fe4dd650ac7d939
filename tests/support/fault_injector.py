"""A FAULT INJECTOR (a test fake, named as such): an HTTP proxy in front of a real server that answers a
set share of POST requests with a fault instead of the upstream's answer.

Faults: `429` (with Retry-After), `500`, `slow` (held longer than the client's timeout, then forwarded),
`drop` (the connection is closed with no answer), `reset` (the upstream's answer is cut halfway by a TCP
reset), `malformed` (the upstream's 200 answer, cut in half: broken JSON) and `fewer` (the upstream's 200
answer with one choice fewer than asked for; llama.cpp's server answers one choice whatever `n` is, so in
front of it this leaves an empty `choices` list). It runs its own event loop in a thread; every request
opens a fresh connection (`Connection: close`). `counts` and `arrivals` tell what was injected.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import threading
import time

import httpx

FAULTS = ("429", "500", "slow", "drop", "reset", "malformed", "fewer")


class FaultInjector:
    def __init__(self, upstream: str, *, rate: float = 0.3, faults: tuple[str, ...] = FAULTS, seed: int = 0,
                 slow_s: float = 3.0, retry_after_s: float = 0.3, script: list[str] | None = None):
        self.upstream = upstream.rstrip("/")  # http://127.0.0.1:PORT
        self.rate, self.faults, self.slow_s, self.retry_after_s = rate, faults, slow_s, retry_after_s
        self.script = list(script or [])  # faults for the first POSTs, in order ("ok" = pass through)
        self.rng = random.Random(seed)
        self.counts: dict[str, int] = {f: 0 for f in (*FAULTS, "ok")}
        self.arrivals: list[tuple[float, str]] = []  # (time, fault) of each POST
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultInjector:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop)
        self._server = fut.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close():
            self._server.close()
            # answers still held (`slow`) or being forwarded end here, not when the loop is collected
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @staticmethod
    def spread(rate: float, faults: tuple[str, ...] = FAULTS, *, seed: int = 0, cycles: int = 1) -> list[str]:
        """A script that faults exactly `rate` of the POSTs, every kind in turn: one fault in each block of
        round(1/rate) POSTs, at a random place in the block; each cycle has every kind once, in a random
        order. So every kind has been injected by POST len(faults)/rate."""
        rng = random.Random(seed)
        every = max(1, round(1 / rate))
        script: list[str] = []
        for _ in range(cycles):
            kinds = list(faults)
            rng.shuffle(kinds)
            for kind in kinds:
                block = ["ok"] * every
                block[rng.randrange(every)] = kind
                script += block
        return script

    def _pick(self, method: str) -> str:
        if method != "POST":
            return "ok"
        if self.script:
            return self.script.pop(0)
        return self.rng.choice(self.faults) if self.rng.random() < self.rate else "ok"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            fault = self._pick(method)
            self.counts[fault] += 1
            if method == "POST":
                self.arrivals.append((time.monotonic(), fault))
            if fault == "drop":
                writer.transport.abort()
                return
            if fault == "429":
                await self._reply(writer, 429, b'{"error": {"message": "slow down (injected)"}}',
                                  {"Retry-After": f"{self.retry_after_s:g}"})
                return
            if fault == "500":
                await self._reply(writer, 500, b'{"error": {"message": "injected failure"}}')
                return
            if fault == "slow":
                await asyncio.sleep(self.slow_s)
            status, content = await self._forward(method, path, headers, body)
            if fault == "malformed":
                content = content[: max(1, len(content) // 2)]
            if fault == "fewer":
                content = self._fewer(body, content)
            if fault == "reset":  # the head and half the body, then RST (SO_LINGER 0): a connection reset
                await self._reply(writer, status, content, cut=max(1, len(content) // 2))
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            await self._reply(writer, status, content)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()

    async def _forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        keep = {k: v for k, v in headers.items() if k in ("content-type", "authorization", "accept")}
        async with httpx.AsyncClient(timeout=600) as client:
            resp = await client.request(method, self.upstream + path, headers=keep, content=body)
            return resp.status_code, resp.content

    @staticmethod
    def _fewer(body: bytes, content: bytes) -> bytes:
        """The answer with one choice fewer than asked for (and than it has): choices[:min(have, n) - 1]."""
        try:
            n = int(json.loads(body).get("n") or 1)
            answer = json.loads(content)
            choices = answer["choices"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return content  # not a completion (an error answer): passed on as it is
        answer["choices"] = choices[: max(0, min(len(choices), n) - 1)]
        return json.dumps(answer).encode()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, content: bytes, extra: dict | None = None,
                     cut: int | None = None) -> None:
        """Answer with `content` (Content-Length says all of it; `cut` sends only its first bytes)."""
        reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Status")
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
                f"Content-Length: {len(content)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + content[:cut])
        await writer.drain()
