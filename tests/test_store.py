"""The store's reads see every write that returned before them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from skopd.models import Job, JobStatus, Parameters, utcnow
from skopd.store import Store


def _job(job_id: str) -> Job:
    return Job(
        job_id=job_id, owner="o", website="http://x.org/", prompt="minutes of 2024",
        parameters=Parameters(), status=JobStatus.PENDING, message="", created_at=utcnow(),
    )  # fmt: skip


async def test_a_job_just_inserted_is_found_while_other_reads_run(tmp_path: Path) -> None:
    """A read of several rows in progress on the reader's connection must not make a job
    inserted a moment later invisible to the next read (it was never run, nor found)."""
    store = Store(tmp_path / "x.db")
    await store.open()
    try:
        for n in range(5):
            await store.insert_job(_job(f"job_old{n}"))
        stop = asyncio.Event()

        async def list_forever() -> None:
            while not stop.is_set():
                assert len(await store.list_jobs("o", None, 100, None)) >= 5

        readers = [asyncio.create_task(list_forever()) for _ in range(3)]
        try:
            missing = []
            for n in range(40):
                await store.insert_job(_job(f"job_new{n}"))
                if await store.get_job(f"job_new{n}") is None:
                    missing.append(n)
                await asyncio.sleep(0)
        finally:
            stop.set()
            await asyncio.gather(*readers)
        assert missing == []
    finally:
        await store.close()
