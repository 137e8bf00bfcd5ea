"""`python -m skopd serve` as a real process on a free loopback port, for the tests that
need the whole daemon: signals, restarts, its log, the processes it starts."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from signal import SIGKILL, Signals

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
START_LIMIT_S = 60.0  # until /healthz answers; a loaded machine starts slowly


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class SkopdProcess:
    """The daemon with its own config in `workdir`, stderr and stdout in files there.

    `server` is more of the `[server]` section (the port is chosen here), `sections` the
    rest of the config text; `env` is added to the environment. One object can be started
    again after it stopped or was killed: same port, same config, the logs appended to.
    """

    def __init__(
        self,
        workdir: Path,
        sections: str = "",
        *,
        server: str = "",
        env: Mapping[str, str] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stderr_log = workdir / "stderr.log"
        self.stdout_log = workdir / "stdout.log"
        self.config = workdir / "config.toml"
        self.config.write_text(f"[server]\nport = {self.port}\n{server}{sections}")
        self.env = {**os.environ, **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None

    async def launch(self, *args: str) -> asyncio.subprocess.Process:
        """Starts the process (extra command-line `args` after the config) without waiting."""
        with self.stderr_log.open("ab") as err, self.stdout_log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "skopd", "serve", "--config", str(self.config), *args,
                cwd=ROOT, env=self.env, stdout=out, stderr=err,
            )  # fmt: skip
        return self.proc

    async def start(self, *args: str) -> None:
        """Starts the process and returns once /healthz answers 200."""
        proc = await self.launch(*args)
        end = time.monotonic() + START_LIMIT_S
        async with aiohttp.ClientSession() as http:
            while True:
                if proc.returncode is not None:
                    raise AssertionError(
                        f"skopd exited at start ({proc.returncode}); stderr:\n{self.stderr()}"
                    )
                try:
                    async with http.get(f"{self.base}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > end:
                    raise AssertionError(
                        f"skopd did not answer in {START_LIMIT_S} s; stderr:\n{self.stderr()}"
                    )
                await asyncio.sleep(0.05)

    async def exit_code(self, within: float) -> int:
        """Its exit code, failing with its log if it still runs `within` seconds from now."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"still running {within} s after the signal; stderr:\n{self.stderr()}"
            ) from None

    async def signal(self, sig: Signals, within: float = 15.0) -> tuple[int, float]:
        """Sends `sig`: (exit code, seconds it took to exit)."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        began = loop.time()
        self.proc.send_signal(sig)
        code = await self.exit_code(within)
        return code, loop.time() - began

    async def close(self, sig: Signals = SIGKILL) -> None:
        """Cleanup: sends `sig` if it still runs, and reaps it."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        await self.proc.wait()

    def stderr(self) -> str:
        return self.stderr_log.read_text() if self.stderr_log.exists() else ""
