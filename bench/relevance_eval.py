"""Relevance quality: precision, recall and F1 of the daemon's documents for labelled prompts.

Each prompt's truth is an exact set of documents on one of four realistic fixture sites.

Run from the repository root: ``.venv/bin/python bench/relevance_eval.py [--backend lexical]``.
The sites (bench/evalsites) are served from this process on 127.0.0.1; the daemon runs as a
subprocess on a temporary config. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))  # evalsites builds its files with tests/sites/docsite.py

from aiohttp import web  # noqa: E402
from crawl_bench import POLL_S, SkopdFailed, call, free_port, wait_healthy  # noqa: E402
from evalsites import SITES, Label, Site, make_app  # noqa: E402

PARAMETERS: dict[str, Any] = {"max_pages": 500, "max_depth": 10}
TARGET_F1 = 0.75
JOBS_TIMEOUT_S = 1800.0


@dataclass
class Outcome:
    """One labelled prompt's job, its documents mapped onto the site's canonical paths."""

    site: Site
    label: Label
    job_id: str
    status: str = ""
    pages: int = 0
    judge: str = ""  # relevance backend and model the daemon says it used
    llm: tuple[int, int, int] = (0, 0, 0)  # calls, input tokens, output tokens
    returned: dict[str, float] = field(default_factory=dict)  # path -> confidence
    passed_over: dict[str, tuple[float, str]] = field(default_factory=dict)  # path -> why not

    @property
    def hits(self) -> int:
        return len(self.returned.keys() & self.label.relevant)

    @property
    def precision(self) -> float:
        return self.hits / len(self.returned) if self.returned else 0.0

    @property
    def recall(self) -> float:
        return self.hits / len(self.label.relevant)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _path_qs(site: Site, url: str) -> str:
    parts = urlsplit(url)
    return site.canonical(parts.path + (f"?{parts.query}" if parts.query else ""))


# ---------------------------------------------------------------- the daemon


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _write_config(workdir: Path, port: int, relevance: dict[str, str]) -> Path:
    # [relevance] is written only when asked for: older daemons refuse unknown sections.
    section = "".join(f"{key} = {_toml(value)}\n" for key, value in relevance.items())
    config = workdir / "config.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\napi_keys = []\n\n'
        f"[storage]\ndatabase = {_toml(str(workdir / 'skopd.db'))}\n"
        f"documents_dir = {_toml(str(workdir / 'documents'))}\n\n"
        "[jobs]\nmax_concurrent_jobs = 2\n\n"
        "[crawler]\nper_host_concurrency = 8\nper_host_delay_ms = 0\n"
        "allow_private_networks = true\n" + (f"\n[relevance]\n{section}" if section else "")
    )
    return config


def _start(python: str, config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        command = [python, "-m", "skopd", "serve", "--config", str(config)]
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def _submit(api: str, origin: str, prompt: str, threshold: float | None) -> str:
    parameters = dict(PARAMETERS)
    if threshold is not None:
        parameters["confidence_threshold"] = threshold
    job = call(f"{api}/scrape", {"website": origin, "prompt": prompt, "parameters": parameters})
    return str(job["job_id"])


async def _follow(api: str, outcomes: list[Outcome]) -> None:
    """Poll every job until none is active, then read each one's results."""
    waiting = list(outcomes)
    deadline = time.monotonic() + JOBS_TIMEOUT_S
    while waiting:
        for outcome in list(waiting):
            status = await asyncio.to_thread(call, f"{api}/scrape/status/{outcome.job_id}")
            if status["is_active"]:
                continue
            results = await asyncio.to_thread(call, f"{api}/scrape/results/{outcome.job_id}")
            outcome.status = str(results["status"])
            outcome.pages = int(results.get("total_pages_crawled") or 0)
            _read_judge(outcome, status)
            for doc in results.get("documents", []):
                path = _path_qs(outcome.site, str(doc["url"]))
                score = float(doc["confidence_score"])
                outcome.returned[path] = max(score, outcome.returned.get(path, 0.0))
            waiting.remove(outcome)
        if waiting and time.monotonic() > deadline:
            raise SkopdFailed(f"{len(waiting)} jobs still active after {JOBS_TIMEOUT_S:.0f} s")
        await asyncio.sleep(POLL_S)


def _read_judge(outcome: Outcome, status: dict[str, Any]) -> None:
    backend = status.get("relevance_backend") or "unreported"
    outcome.judge = f"{backend} ({status['model']})" if status.get("model") else backend
    keys = ("llm_calls", "input_tokens", "output_tokens")
    calls, tokens_in, tokens_out = (int(status.get(key) or 0) for key in keys)
    outcome.llm = (calls, tokens_in, tokens_out)


def _read_passed_over(database: Path, outcomes: list[Outcome]) -> None:
    """Candidates the daemon judged but did not return, from its store: the API does not
    list them, and they tell a scorer's miss from a document the crawl never reached."""
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            for outcome in outcomes:
                rows = db.execute(
                    "SELECT url, confidence_score, decision FROM candidates WHERE job_id = ?",
                    (outcome.job_id,),
                )
                for url, score, decision in rows:
                    path = _path_qs(outcome.site, url)
                    best = outcome.passed_over.get(path, (-1.0, ""))
                    if path not in outcome.returned and float(score) > best[0]:
                        outcome.passed_over[path] = (float(score), str(decision))
    except sqlite3.Error as exc:
        print(f"(candidates not read from the daemon's store: {exc})", file=sys.stderr)


async def run_jobs(
    labelled: list[tuple[Site, Label]], relevance: dict[str, str], args: argparse.Namespace
) -> list[Outcome]:
    origins: dict[str, str] = {}
    runners: list[web.AppRunner] = []
    try:
        for site in {site.name: site for site, _ in labelled}.values():
            runner = web.AppRunner(make_app(site), access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            origins[site.name] = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        with tempfile.TemporaryDirectory(prefix="skopd-relevance-") as tmp:
            workdir, port = Path(tmp), free_port()
            config = _write_config(workdir, port, relevance)
            api, log_path = f"http://127.0.0.1:{port}", workdir / "skopd.log"
            daemon = await asyncio.to_thread(_start, args.python, config, log_path)
            try:
                await asyncio.to_thread(wait_healthy, api, daemon, 60)
                outcomes = []
                for site, label in labelled:
                    origin = origins[site.name]
                    job_id = await asyncio.to_thread(
                        _submit, api, origin, label.prompt, args.threshold
                    )
                    outcomes.append(Outcome(site, label, job_id))
                await _follow(api, outcomes)
                _read_passed_over(workdir / "skopd.db", outcomes)
                return outcomes
            except (SkopdFailed, OSError, KeyError, ValueError) as exc:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise SkopdFailed(f"{exc}\n--- daemon log (tail) ---\n{tail}") from exc
            finally:
                await asyncio.to_thread(_stop, daemon)
    finally:
        for runner in runners:
            await runner.cleanup()


# ---------------------------------------------------------------- report


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def report(outcomes: list[Outcome], details: bool) -> None:
    print(f"{'prompt':<44} {'site':<12} {'#truth':>6} {'#ret':>5} {'P':>5} {'R':>5} {'F1':>5}")
    for o in outcomes:
        flag = "" if o.status == "completed" else f"  ({o.status})"
        print(
            f"{_short(o.label.prompt, 44):<44} {o.site.name:<12} {len(o.label.relevant):>6}"
            f" {len(o.returned):>5} {o.precision:>5.2f} {o.recall:>5.2f} {o.f1:>5.2f}{flag}"
        )
    if outcomes:
        n = len(outcomes)
        means = [sum(getattr(o, m) for o in outcomes) / n for m in ("precision", "recall", "f1")]
        label = f"mean over {n} prompts"
        print(f"{label:<70} {means[0]:>5.2f} {means[1]:>5.2f} {means[2]:>5.2f}")
        print(f"(target: mean F1 >= {TARGET_F1} for the lexical scorer with document text)")
        judges = Counter(o.judge for o in outcomes)
        print("judged by: " + ", ".join(f"{j} ({n} jobs)" for j, n in judges.most_common()))
        calls, tokens_in, tokens_out = (sum(o.llm[i] for o in outcomes) for i in range(3))
        if calls:
            print(f"model calls: {calls}, tokens in / out: {tokens_in} / {tokens_out}")
    if details:
        for o in outcomes:
            _report_details(o)


def _report_details(o: Outcome) -> None:
    missed = sorted(o.label.relevant - o.returned.keys())
    extra = sorted(o.returned.keys() - o.label.relevant)
    if not missed and not extra:
        return
    print(f"\n{o.label.prompt!r} on {o.site.name} ({o.pages} pages crawled)")
    for path in missed:
        score, decision = o.passed_over.get(path, (0.0, ""))
        fate = f"{decision}, score {score:.3f}" if decision else "never seen (crawl)"
        print(f"  missed  {path}  [{fate}]")
    for path in extra:
        print(f"  extra   {path}  [score {o.returned[path]:.3f}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("lexical", "ollama", "auto"), help="[relevance]")
    parser.add_argument(
        "--ollama-host", help="[relevance] ollama_host, e.g. http://127.0.0.1:11434"
    )
    parser.add_argument("--model", help="[relevance] model, e.g. qwen2.5:3b")
    parser.add_argument(
        "--threshold", type=float, help="confidence_threshold (default: the daemon's, 0.1)"
    )
    parser.add_argument("--only", default="", help="only prompts containing this text")
    parser.add_argument("--details", action="store_true", help="list missed and extra documents")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the daemon")
    args = parser.parse_args(argv)

    wanted = args.only.casefold()
    labelled = [(s, lab) for s in SITES for lab in s.labels if wanted in lab.prompt.casefold()]
    if not labelled:
        print(f"no prompt contains {args.only!r}", file=sys.stderr)
        return 0
    options = (("backend", args.backend), ("ollama_host", args.ollama_host), ("model", args.model))
    relevance = {key: value for key, value in options if value is not None}
    threshold = "daemon default" if args.threshold is None else f"{args.threshold:g}"
    settings = ", ".join(f"{k} = {v}" for k, v in relevance.items()) or "daemon defaults"
    print(f"relevance: {settings}; confidence_threshold: {threshold}")
    started = time.monotonic()
    try:
        outcomes = asyncio.run(run_jobs(labelled, relevance, args))
    except SkopdFailed as exc:
        print(f"skopd: failed: {exc}", file=sys.stderr)
        return 1
    report(outcomes, args.details)
    print(f"({len(outcomes)} jobs in {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
