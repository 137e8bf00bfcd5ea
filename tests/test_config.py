"""The configuration: defaults, the shipped config.toml, the README table, and bad input."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from skopd.config import Config, ConfigError, check_exposure, load, parse

ROOT = Path(__file__).resolve().parent.parent


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            out.update(_flatten(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def _defaults() -> dict[str, Any]:
    raw = msgspec.json.decode(msgspec.json.encode(Config()))
    raw.pop("base_dir")
    return _flatten(raw)


def test_shipped_config_is_the_defaults() -> None:
    shipped = _flatten(tomllib.loads((ROOT / "config.toml").read_text()))
    assert shipped == _defaults()


def test_readme_documents_every_key_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| `(.*?)` \|", readme, re.M))
    defaults = _defaults()
    assert set(rows) == set(defaults)
    for key, cell in rows.items():
        assert tomllib.loads(f"v = {cell}")["v"] == defaults[key], key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nprot = 1", "server.prot: unknown key"),
        ("[crawler]\nconcurrency = 'many'", "crawler.concurrency: Expected `int`, got `str`"),
        ("[jobs]\nmax_concurrent_jobs = 0", "jobs.max_concurrent_jobs: must be between 1"),
        ("[nonsense]\nx = 1", "nonsense: unknown key"),
        ("[server]\napi_keys = ['']", "server.api_keys"),
        ("[server\n", "invalid TOML"),
        (
            "[relevance]\nextract_context_chars = 20000\nextract_answer_tokens = 4096",
            "relevance.extract_answer_tokens: with relevance.extract_context_chars = 20000,"
            " at most 2168",
        ),
    ],
)
def test_bad_config_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(text)


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "skopd.toml"
    path.write_text('[storage]\ndatabase = "db/x.db"\ndocuments_dir = "/abs/docs"\n')
    cfg = load(path)
    assert cfg.database_path == tmp_path / "conf" / "db" / "x.db"
    assert cfg.documents_path == Path("/abs/docs")


def test_open_api_only_on_loopback() -> None:
    check_exposure(parse('[server]\nhost = "127.0.0.1"'))
    check_exposure(parse('[server]\nhost = "::1"'))
    check_exposure(parse('[server]\nhost = "0.0.0.0"\napi_keys = ["k1"]'))
    with pytest.raises(ConfigError, match="not a loopback address"):
        check_exposure(parse('[server]\nhost = "0.0.0.0"'))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skopd", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_check_config_prints_effective_values(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[jobs]\nmax_concurrent_jobs = 2\n")
    out = _cli("check-config", str(path))
    assert out.returncode == 0, out.stderr
    values = msgspec.json.decode(out.stdout)
    assert values["jobs"]["max_concurrent_jobs"] == 2
    assert values["storage"]["database"] == str(tmp_path / "var" / "skopd.db")


def test_cli_check_config_never_prints_an_api_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\napi_keys = ["sk-first-4f9a1c", "sk-second-77b2e0"]\n')
    out = _cli("check-config", str(path))
    assert out.returncode == 0, out.stderr
    printed = out.stdout + out.stderr
    assert "sk-first" not in printed and "sk-second" not in printed
    assert msgspec.json.decode(out.stdout)["server"]["api_keys"] == ["***", "***"]


def test_cli_refuses_bad_config_and_open_public_server(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[crawler]\nconcurency = 3\n")
    out = _cli("check-config", str(bad))
    assert out.returncode == 2
    assert "crawler.concurency: unknown key" in out.stderr
    public = tmp_path / "public.toml"
    public.write_text('[server]\nhost = "0.0.0.0"\n')
    out = _cli("serve", "--config", str(public))
    assert out.returncode == 2
    assert "loopback" in out.stderr


def test_cli_version() -> None:
    out = _cli("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("skopd ")
