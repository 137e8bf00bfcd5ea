"""Typed daemon configuration, decoded from TOML into frozen msgspec Structs.

An unknown key or a wrong type stops start-up with a message naming the key.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path

import msgspec

from skopd import __version__
from skopd.crawl.netpolicy import network_problem


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


class ServerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8765
    api_keys: tuple[str, ...] = ()
    max_request_bytes: int = 65536


class StorageConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    database: str = "var/skopd.db"
    documents_dir: str = "var/documents"
    min_free_disk_mb: int = 512


class JobsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_concurrent_jobs: int = 4
    max_queued_jobs: int = 100
    cache_window_s: int = 3600
    max_queued_per_key: int = 20
    max_job_bytes_mb: int = 2048


class CrawlerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    concurrency: int = 16
    per_host_concurrency: int = 4
    per_host_delay_ms: int = 0
    user_agent: str = f"skopd/{__version__} (+self-hosted document discovery)"
    request_timeout_s: float = 20.0
    download_timeout_s: float = 600.0
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    allow_private_networks: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_networks: tuple[str, ...] = ()
    respect_robots: bool = True
    allow_ignore_robots: bool = False
    max_retries: int = 2
    max_url_length: int = 2048


class RelevanceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    backend: str = "auto"
    ollama_host: str = "http://127.0.0.1:11434"
    model: str = "qwen2.5:3b"
    request_timeout_s: float = 60.0
    max_concurrent_requests: int = 1
    batch_size: int = 20
    max_llm_calls_per_job: int = 200
    doc_text_max_chars: int = 4000
    doc_text_max_pages: int = 3
    doc_text_timeout_s: float = 10.0
    extract_context_chars: int = 12000
    extract_max_calls: int = 10
    extract_answer_tokens: int = 2048
    extract_timeout_s: float = 300.0


class BrowserConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    executable: str = "/usr/bin/chromium"
    max_pages: int = 4
    page_timeout_s: float = 20.0
    block_resources: bool = True


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    jobs: JobsConfig = msgspec.field(default_factory=JobsConfig)
    crawler: CrawlerConfig = msgspec.field(default_factory=CrawlerConfig)
    relevance: RelevanceConfig = msgspec.field(default_factory=RelevanceConfig)
    browser: BrowserConfig = msgspec.field(default_factory=BrowserConfig)
    # Folder that relative storage paths are resolved against (the config file's folder).
    base_dir: str = "."

    @property
    def database_path(self) -> Path:
        return _resolve(self.base_dir, self.storage.database)

    @property
    def documents_path(self) -> Path:
        return _resolve(self.base_dir, self.storage.documents_dir)


def _resolve(base: str, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (Path(base) / p).resolve()


# (key, lowest, highest): numeric settings outside these bounds are refused at start-up.
_RANGES: tuple[tuple[str, float, float], ...] = (
    ("server.port", 0, 65535),
    ("server.max_request_bytes", 1024, 64 * 1024 * 1024),
    ("jobs.max_concurrent_jobs", 1, 256),
    ("jobs.max_queued_jobs", 1, 100_000),
    ("jobs.cache_window_s", 0, 30 * 24 * 3600),
    ("jobs.max_queued_per_key", 1, 100_000),
    ("jobs.max_job_bytes_mb", 1, 10_000_000),
    ("storage.min_free_disk_mb", 0, 10_000_000),
    ("crawler.concurrency", 1, 1024),
    ("crawler.per_host_concurrency", 1, 256),
    ("crawler.per_host_delay_ms", 0, 600_000),
    ("crawler.request_timeout_s", 0.1, 600),
    ("crawler.download_timeout_s", 1, 86400),
    ("crawler.max_page_bytes", 1024, 1024 * 1024 * 1024),
    ("crawler.max_redirects", 0, 50),
    ("crawler.max_retries", 0, 10),
    ("crawler.max_url_length", 256, 65536),
    ("relevance.request_timeout_s", 0.1, 3600),
    ("relevance.max_concurrent_requests", 1, 64),
    ("relevance.batch_size", 1, 200),
    ("relevance.max_llm_calls_per_job", 0, 100_000),
    ("relevance.doc_text_max_chars", 0, 1_000_000),
    ("relevance.doc_text_max_pages", 1, 1000),
    ("relevance.doc_text_timeout_s", 0.1, 600),
    # Page text, instructions and answer share the model's 8192-token context.
    ("relevance.extract_context_chars", 1000, 20000),
    ("relevance.extract_max_calls", 1, 1000),
    ("relevance.extract_answer_tokens", 64, 4096),
    ("relevance.extract_timeout_s", 1, 3600),
    ("browser.max_pages", 1, 64),
    ("browser.page_timeout_s", 1, 600),
)


def _validate(cfg: Config) -> None:
    for key, lo, hi in _RANGES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: must be between {lo:g} and {hi:g} (got {value})")
    if any(not k or k != k.strip() for k in cfg.server.api_keys):
        raise ConfigError("server.api_keys: keys must be non-empty strings without spaces around")
    for network in cfg.crawler.allowed_networks:
        problem = network_problem(network)
        if problem is not None:
            raise ConfigError(f"crawler.allowed_networks: {network!r} is not a CIDR ({problem})")
    for host in cfg.crawler.allowed_hosts:
        if not host or any(c in host for c in "/:@ \t"):
            raise ConfigError(
                f"crawler.allowed_hosts: {host!r} is not a host name "
                "(no scheme, port or path; addresses go in crawler.allowed_networks)"
            )
    if not cfg.crawler.user_agent.strip():
        raise ConfigError("crawler.user_agent: must not be empty")
    if cfg.relevance.backend not in ("auto", "ollama", "lexical"):
        raise ConfigError('relevance.backend: must be "auto", "ollama" or "lexical"')
    if not cfg.relevance.ollama_host.startswith(("http://", "https://")):
        raise ConfigError("relevance.ollama_host: must be an http(s) URL")
    if not cfg.relevance.model.strip():
        raise ConfigError("relevance.model: must not be empty")
    # Page (about 4 characters a token), instructions and answer share the model's context
    # (CONTEXT_TOKENS = 8192 in relevance/ollama.py).
    r = cfg.relevance
    if r.extract_context_chars // 4 + r.extract_answer_tokens > 7168:
        raise ConfigError(
            "relevance.extract_answer_tokens: with relevance.extract_context_chars ="
            f" {r.extract_context_chars}, at most {7168 - r.extract_context_chars // 4}"
            " (page and answer share the model's 8192-token context)"
        )
    if not cfg.browser.executable.strip():
        raise ConfigError("browser.executable: must not be empty")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(cfg: Config) -> None:
    """An API without keys may only listen on loopback."""
    if not cfg.server.api_keys and not is_loopback_host(cfg.server.host):
        raise ConfigError(
            f"server.api_keys: empty, but server.host is {cfg.server.host!r}, which is not a "
            "loopback address; an open API may only listen on 127.0.0.1/::1/localhost. "
            "Set server.api_keys or listen on a loopback address."
        )


def parse(text: str, base_dir: str = ".") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}") from exc
    if "base_dir" in raw:
        raise ConfigError("Object contains unknown field `base_dir`")
    raw["base_dir"] = base_dir
    try:
        cfg = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(_readable(str(exc))) from exc
    _validate(cfg)
    return cfg


def _readable(msg: str) -> str:
    """Lead with the dotted key, as a user reads it: `crawler.concurrency: Expected int`."""
    text, _, path = msg.partition(" - at `$")
    path = path.rstrip("`").lstrip(".")
    unknown = re.fullmatch(r"Object contains unknown field `(.+)`", text)
    if unknown:
        key = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        return f"{key}: unknown key"
    return f"{path}: {text}" if path else text


def load(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from exc
    return parse(text, str(p.resolve().parent))


def effective(cfg: Config) -> dict[str, object]:
    """The configuration as a user reads it, with resolved storage paths; API keys are
    shown as "***", one per key (what is printed may end up in a terminal log or a ticket)."""
    out: dict[str, object] = msgspec.to_builtins(cfg)
    out.pop("base_dir", None)
    server = out["server"]
    assert isinstance(server, dict)
    server["api_keys"] = ["***"] * len(cfg.server.api_keys)
    storage = out["storage"]
    assert isinstance(storage, dict)
    storage["database"] = str(cfg.database_path)
    storage["documents_dir"] = str(cfg.documents_path)
    return out
