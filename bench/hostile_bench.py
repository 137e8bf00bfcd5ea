"""What each hostile answer costs the daemon (figures, not a test).

.venv/bin/python bench/hostile_bench.py [CASE ...]

Runs an in-process daemon (request_timeout_s 2, download_timeout_s 3, max_page_bytes 1 MiB,
max_file_size_mb 1) against the hostile fixture site (tests/sites/hostile.py), one job per
case, one after the other, and prints for each: the job's end state, wall seconds, the
Python heap's peak during the job (tracemalloc), the process's peak RSS so far (VmHWM), and
the first error or warning.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestClient, TestServer

from skopd.web.app import make_app
from tests.conftest import make_config, submit, wait_done
from tests.sites.hostile import CASES, HostileSite


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(cases: list[str]) -> None:
    site = HostileSite()
    await site.start()
    cfg = make_config(
        Path(tempfile.mkdtemp(prefix="skopd-hostile-")),
        crawler={"request_timeout_s": 2.0, "download_timeout_s": 3.0, "max_page_bytes": 1 << 20},
    )
    client = TestClient(TestServer(make_app(cfg), host="127.0.0.1"))
    await client.start_server()
    print(f"{'case':18} {'status':10} {'s':>5} {'heap MB':>8} {'RSS MB':>7}  first problem")
    try:
        for case in cases:
            tracemalloc.start()
            began = time.monotonic()
            job_id = await submit(
                client, site.url(f"/index/{case}"), "board meeting minutes 2024", max_file_size_mb=1
            )
            status = await wait_done(client, job_id, timeout=120)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            results = await (await client.get(f"/scrape/results/{job_id}")).json()
            problems = [f"{e['error_type']}: {e['error_message']}" for e in results["errors"]]
            problems += [f"warning: {w}" for w in results["warnings"]]
            first = (problems[0] if problems else "-").replace("\n", " ")[:70]
            print(
                f"{case:18} {status['status']:10} {time.monotonic() - began:5.1f} "
                f"{peak / 1e6:8.1f} {peak_rss_mb():7.0f}  {first}"
            )
    finally:
        await client.close()
        await site.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or list(CASES)))
