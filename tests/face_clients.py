"""Helpers for the tests of the Spidra-, Aitronos- and documentation-scraper-style faces:
their documents' polling loops as Python clients, and checks through the Skop face."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
KEY_A, KEY_B = "key-aaaa", "key-bbbb"
KEYS: dict[str, Any] = {"api_keys": [KEY_A, KEY_B]}
POLL_S = 0.05
LIMIT_S = 60.0


class JobFailedError(Exception):
    pass


async def spidra_wait_for_result(client: Client, job_id: str, key: str) -> dict[str, Any]:
    """Spidra's waitForResult: poll until completed (its result) or failed (raise)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIMIT_S
    while loop.time() < deadline:
        res = await client.get(f"/api/scrape/{job_id}", headers={"x-api-key": key})
        data: dict[str, Any] = await res.json()
        if data["status"] == "completed":
            result: dict[str, Any] = data["result"]
            return result
        if data["status"] == "failed":
            raise JobFailedError(data["error"])
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"job {job_id} did not end in {LIMIT_S} s")


async def aitronos_wait(client: Client, job_id: str, key: str) -> dict[str, Any]:
    """Aitronos's status check, repeated until the job has ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIMIT_S
    while loop.time() < deadline:
        res = await client.get(f"/api/v1/scrape/jobs/{job_id}", headers={"X-API-Key": key})
        assert res.status == 200, await res.text()
        data: dict[str, Any] = await res.json()
        if data["status"] in ("completed", "failed", "cancelled"):
            return data
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"job {job_id} did not end in {LIMIT_S} s")


async def docs_wait(
    client: Client, session_id: str, key: str, job_id: str | None = None
) -> dict[str, Any]:
    """The documentation scraper's status poll, until finished or failed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIMIT_S
    query = f"?jobId={job_id}" if job_id else ""
    while loop.time() < deadline:
        res = await client.get(
            f"/api/v1/scrape/{session_id}/scrape{query}", headers={"X-API-Key": key}
        )
        assert res.status == 200, await res.text()
        data: dict[str, Any] = await res.json()
        if data["status"] in ("finished", "failed", "not_found"):
            return data
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"job of session {session_id} did not end in {LIMIT_S} s")


async def skop_listing(client: Client, key: str) -> dict[str, dict[str, Any]]:
    """The caller's jobs as GET /scrape/jobs reports them, by id."""
    res = await client.get("/scrape/jobs?limit=100", headers={"X-API-Key": key})
    assert res.status == 200, await res.text()
    return {j["job_id"]: j for j in (await res.json())["jobs"]}


async def sse_events(client: Client, job_id: str, key: str) -> list[str]:
    """The names of an ended job's events, replayed by its SSE stream (which then ends)."""
    res = await client.get(f"/scrape/events/{job_id}", headers={"X-API-Key": key}, timeout=30)
    assert res.status == 200, await res.text()
    text = await res.text()
    return [line[7:] for line in text.splitlines() if line.startswith("event: ")]


def node_runs(script: str, node_path: str | None = None, **env_vars: str) -> str:
    """Run a JavaScript snippet with node; its stdout."""
    node = shutil.which("node")
    assert node is not None
    env = {"PATH": "/usr/bin:/bin", **env_vars}
    if node_path:
        env["NODE_PATH"] = node_path
    done = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def global_node_modules() -> str | None:
    npm = shutil.which("npm")
    if npm is None:
        return None
    done = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or None
