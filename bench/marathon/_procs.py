"""Client loop processes (``_client.py``) started and stopped from asyncio."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class ClientProcess:
    def __init__(self, port: int, pause: float = 0.0) -> None:
        self.port = port
        self.pause = pause
        self.proc: asyncio.subprocess.Process | None = None
        self.result: dict[str, Any] | None = None

    async def start(self) -> ClientProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "_client.py"),
            str(self.port),
            str(self.pause),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert (await self.proc.stdout.readline()).strip() == b"ready"
        return self

    async def stop(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        await self.proc.wait()
        self.result = json.loads(line)
        return self.result
