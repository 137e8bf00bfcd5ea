"""The crawler never connects to a forbidden address, however it is spelled or reached.

A trap listens on forbidden loopback addresses (127.0.0.1 and 127.0.0.2, and ::1 when the
machine has IPv6) and counts every connection it accepts: each test asserts it got none.
Names are mapped by a fake resolver; no real DNS is ever asked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient, TestServer

from skopd.config import ConfigError, parse
from skopd.crawl.netpolicy import AddressPolicy, BlockedAddress, is_forbidden, parse_address
from skopd.web.app import make_app
from skopd.web.state import DOWNLOADER
from tests.conftest import make_config, submit, wait_done
from tests.process import free_port

Client = TestClient[web.Request, web.Application]
PROMPT = "board meeting minutes from 2024"


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6()


class Trap:
    """Listeners on forbidden addresses, all on one port, counting accepted connections."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.servers: list[asyncio.Server] = []
        self.port = 0

    async def start(self) -> None:
        hosts = ["127.0.0.1", "127.0.0.2"] + (["::1"] if HAS_IPV6 else [])
        for _ in range(20):  # find a port free on every address
            self.port = free_port()
            try:
                for host in hosts:
                    self.servers.append(await asyncio.start_server(self._accept, host, self.port))
                return
            except OSError:
                await self.close()
        raise RuntimeError("no free port for the trap")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(str(writer.get_extra_info("sockname")))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
        self.servers.clear()


class FakeResolver(AbstractResolver):
    """Maps names to addresses from a table (a list, or a function of the call count)."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.calls: dict[str, int] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        n = self.calls[host] = self.calls.get(host, 0) + 1
        entry = self.table.get(host)
        if entry is None:
            if parse_address(host) is None:
                raise OSError(f"unknown test name {host}")
            entry = [host]
        addresses: Iterable[str] = entry(n) if callable(entry) else entry
        return [
            {
                "hostname": host,
                "host": ip,
                "port": port,
                "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in addresses
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    t = Trap()
    await t.start()
    yield t
    await t.close()


Start = Callable[..., Awaitable[Client]]


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Start]:
    """A closed daemon (allow_private_networks false) with a fake resolver."""
    clients: list[Client] = []

    async def start(resolver: AbstractResolver | None = None, **crawler: Any) -> Client:
        cfg = make_config(
            tmp_path,
            crawler={"allow_private_networks": False, "request_timeout_s": 3.0, **crawler},
        )
        client = TestClient(
            TestServer(make_app(cfg, resolver or FakeResolver({})), host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for c in clients:
        await c.close()


def spellings(port: int, v4: str = "127.0.0.2") -> list[str]:
    """URLs naming a forbidden local address in every spelling a resolver would accept."""
    a, b, c, d = (int(x) for x in v4.split("."))
    n = (a << 24) | (b << 16) | (c << 8) | d
    mapped = f"::ffff:{(a << 8) | b:x}:{(c << 8) | d:x}"
    hosts = [
        v4,
        str(n),  # decimal
        f"0x{n:08x}",  # one hex number
        f"0{n:o}",  # one octal number
        f"0x{a:x}.{b}.{c}.{d}",
        f"0{a:o}.0.0.{d}",
        f"{a}.{(b << 16) | (c << 8) | d}",  # 127.2
        f"0x{a:x}.{(b << 16) | (c << 8) | d}",
        f"{a:03d}.{b:03d}.{c:03d}.{d:03d}",
        f"{v4}.",
        f"[::ffff:{v4}]",
        f"[{mapped}]",
        f"[0:0:0:0:0:ffff:{v4}]",
        f"[::{v4}]",  # IPv4-compatible
        f"[64:ff9b::{v4}]",  # NAT64
        f"[2002:{(a << 8) | b:x}:{(c << 8) | d:x}::1]",  # 6to4
        "0.0.0.0",
        "0",
        "[::]",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
    ]
    return [f"http://{h}:{port}/" for h in hosts]


ELSEWHERE = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::a9fe:a9fe]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://198.18.0.1/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://2852039166/",  # 169.254.169.254
    "http://0xa9.0xfe.0xa9.0xfe/",
]


def test_every_forbidden_spelling_parses_to_a_forbidden_address() -> None:
    for url in spellings(80) + spellings(80, "127.0.0.1") + ELSEWHERE:
        host = urlsplit(url).hostname
        assert host is not None, url
        addr = parse_address(host)
        assert addr is not None, url
        assert is_forbidden(addr), url
    for public in ("93.184.216.34", "2606:2800:220:1::1", "[64:ff9b::8.8.8.8]", "8.8.8.8"):
        addr = parse_address(public)
        assert addr is not None and not is_forbidden(addr), public
    for name in ("example.org", "deadbeef", "1.2.3.4.5", "0x", "localhost"):
        assert parse_address(name) is None, name


async def test_forbidden_addresses_are_refused_at_submit(daemon: Start, trap: Trap) -> None:
    client = await daemon()
    for url in spellings(trap.port, "127.0.0.1") + spellings(trap.port) + ELSEWHERE:
        resp = await client.post("/scrape", json={"website": url, "prompt": PROMPT})
        assert resp.status == 400, (url, await resp.text())
        message = (await resp.json())["message"]
        assert message.startswith("website: "), message
        assert "allow_private_networks" in message, message
    jobs = await (await client.get("/scrape/jobs")).json()
    assert jobs["jobs"] == []
    await asyncio.sleep(0.2)
    assert trap.accepted == []


async def test_other_schemes_are_refused_at_submit(daemon: Start) -> None:
    client = await daemon()
    for url in (
        "file:///etc/passwd",
        "ftp://example.org/x",
        "gopher://example.org:70/_GET",
        "data:text/html,hello",
        "javascript:alert(1)",
        "dict://example.org:11211/",
    ):
        resp = await client.post("/scrape", json={"website": url, "prompt": PROMPT})
        assert resp.status == 400, url
        message = (await resp.json())["message"]
        assert message.startswith("website:") and "http" in message, message


def _redirect_site(targets: list[str]) -> web.Application:
    """`/` links to /go/0 .. /go/N (pages) and /doc/0 .. /doc/N (documents), each a redirect
    to one target."""

    async def home(_: web.Request) -> web.Response:
        links = "".join(
            f'<a href="/go/{i}">board minutes 2024 page {i}</a>'
            f'<a href="/doc/{i}.pdf">board meeting minutes 2024 file {i}</a>'
            for i in range(len(targets))
        )
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    async def go(request: web.Request) -> web.Response:
        index = int(request.match_info["i"])
        raise web.HTTPFound(targets[index])

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/go/{i}", go)
    app.router.add_get("/doc/{i}.pdf", go)
    return app


async def test_redirects_to_forbidden_addresses_and_schemes_are_refused(
    daemon: Start, trap: Trap, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    targets = [
        *spellings(trap.port),
        *ELSEWHERE,
        "file:///etc/passwd",
        "gopher://127.0.0.2:70/_x",
        "ftp://127.0.0.2/x",
        f"http://evil.test:{trap.port}/",
        f"http://rebind.test:{trap.port}/",
    ]
    site = await aiohttp_server(_redirect_site(targets), host="127.0.0.1")
    resolver = FakeResolver({"evil.test": ["127.0.0.2"], "rebind.test": ["::1", "10.1.1.1"]})
    # The fixture site is let through by the allow-list; nothing else local is.
    client = await daemon(resolver, allowed_networks=["127.0.0.1/32"], max_redirects=3)
    job_id = await submit(client, str(site.make_url("/")), PROMPT, max_file_size_mb=1)
    status = await wait_done(client, job_id, timeout=60)
    assert status["status"] == "completed", status
    results = await (await client.get(f"/scrape/results/{job_id}")).json()
    errors = {(e["error_type"], e["page_url"].rsplit("/", 1)[1]) for e in results["errors"]}
    kinds = {kind for kind, _ in errors}
    assert kinds <= {"forbidden_address", "unsupported_scheme"}, errors
    for i, target in enumerate(targets):
        kind = "forbidden_address" if target.startswith("http:") else "unsupported_scheme"
        assert (kind, str(i)) in errors, (target, sorted(errors))
        assert (kind, f"{i}.pdf") in errors, (target, sorted(errors))
    assert results["documents"] == []
    await asyncio.sleep(0.2)
    assert trap.accepted == []


async def test_names_resolving_to_forbidden_addresses_fail_the_job(
    daemon: Start, trap: Trap
) -> None:
    resolver = FakeResolver(
        {
            "evil.test": ["127.0.0.2"],
            "loop.test": ["127.0.0.1"],
            "six.test": ["::1"],
            "mapped.test": ["::ffff:127.0.0.2"],
            "metadata.test": ["169.254.169.254"],
        }
    )
    client = await daemon(resolver)
    for name in resolver.table:
        job_id = await submit(client, f"http://{name}:{trap.port}/", PROMPT)
        status = await wait_done(client, job_id)
        assert status["status"] == "failed", status
        [error] = status["errors"]
        assert error["error_type"] == "forbidden_address", error
        assert name in error["error_message"] and "allow_private_networks" in error["error_message"]
    assert trap.accepted == []


async def test_a_name_with_public_and_private_addresses_uses_only_the_allowed_one(
    daemon: Start, trap: Trap
) -> None:
    # 127.0.0.1 stands in for the public address (allowed by the allow-list); the trap's
    # 127.0.0.2 and ::1 are what a hostile DNS answer slips in, first in the list.
    resolver = FakeResolver({"mixed.test": ["127.0.0.2", "::1", "127.0.0.1"]})
    client = await daemon(resolver, allowed_networks=["127.0.0.1/32"])
    job_id = await submit(client, f"http://mixed.test:{trap.port}/", PROMPT)
    status = await wait_done(client, job_id)
    assert status["status"] == "completed", status
    assert {a.split("'")[1] for a in trap.accepted} == {"127.0.0.1"}


async def test_dns_rebinding_is_refused_when_the_name_is_resolved_again(
    daemon: Start, trap: Trap, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>board minutes</body></html>",
            content_type="text/html",
            headers={"Connection": "close"},
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    site = await aiohttp_server(app, host="127.0.0.1")
    # First answer: the allowed address; every later one: the trap's address.
    resolver = FakeResolver({"rebind.test": lambda n: ["127.0.0.1"] if n == 1 else ["127.0.0.2"]})
    client = await daemon(resolver, allowed_networks=["127.0.0.1/32"])
    first = await submit(client, f"http://rebind.test:{site.port}/", PROMPT)
    assert (await wait_done(client, first))["status"] == "completed"
    # The name's TTL runs out; the next job resolves it again and gets the trap's address.
    downloader = client.server.app[DOWNLOADER]
    connector = downloader.session.connector
    assert isinstance(connector, aiohttp.TCPConnector)
    connector.clear_dns_cache()
    second = await submit(client, f"http://rebind.test:{trap.port}/", PROMPT)
    status = await wait_done(client, second)
    assert status["status"] == "failed", status
    assert status["errors"][0]["error_type"] == "forbidden_address"
    assert resolver.calls["rebind.test"] >= 2
    assert trap.accepted == []


async def test_the_socket_check_holds_even_when_a_resolver_lies(trap: Trap) -> None:
    """The last line: the address about to be dialled is checked, whatever resolved it."""
    policy = AddressPolicy(False, allowed_networks=["127.0.0.1/32"])
    resolver = FakeResolver({"evil.test": ["127.0.0.2"], "ok.test": ["127.0.0.1"]})
    connector = aiohttp.TCPConnector(resolver=resolver, socket_factory=policy.socket_factory)
    async with aiohttp.ClientSession(connector=connector) as session:
        for url in (f"http://evil.test:{trap.port}/", f"http://[::1]:{trap.port}/"):
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await session.get(url)
            assert isinstance(info.value.os_error, BlockedAddress) or "address policy" in str(
                info.value
            )
        async with session.get(f"http://ok.test:{trap.port}/") as resp:
            assert resp.status == 200
    assert [a.split("'")[1] for a in trap.accepted] == ["127.0.0.1"]
    with pytest.raises(BlockedAddress):
        policy.check_address("169.254.169.254")
    policy.check_address("127.0.0.1")
    policy.check_address(ipaddress.ip_address("::ffff:127.0.0.1"))


async def test_allowed_hosts_let_a_named_private_site_through(daemon: Start, trap: Trap) -> None:
    resolver = FakeResolver({"intranet.test": ["127.0.0.2"], "other.test": ["127.0.0.2"]})
    client = await daemon(resolver, allowed_hosts=["Intranet.Test"])
    ok = await submit(client, f"http://intranet.test:{trap.port}/", PROMPT)
    assert (await wait_done(client, ok))["status"] == "completed"
    assert len(trap.accepted) >= 1
    reached = len(trap.accepted)
    refused = await submit(client, f"http://other.test:{trap.port}/", PROMPT)
    status = await wait_done(client, refused)
    assert status["status"] == "failed"
    assert "other.test" in status["errors"][0]["error_message"]
    assert len(trap.accepted) == reached


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[crawler]\nallowed_networks = ["10.0.0.0/33"]',
            "crawler.allowed_networks: '10.0.0.0/33'",
        ),
        ('[crawler]\nallowed_networks = ["intranet"]', "crawler.allowed_networks: 'intranet'"),
        ('[crawler]\nallowed_hosts = ["http://x.org/"]', "crawler.allowed_hosts: 'http://x.org/'"),
        ('[crawler]\nallowed_hosts = ["x.org:8080"]', "crawler.allowed_hosts"),
    ],
)
def test_a_bad_allow_list_stops_start_up_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert message in str(info.value)


def test_allow_list_config_is_read() -> None:
    cfg = parse(
        '[crawler]\nallowed_networks = ["10.1.2.0/24", "fd00::/8"]\nallowed_hosts = ["a.b"]'
    )
    policy = AddressPolicy(False, cfg.crawler.allowed_hosts, cfg.crawler.allowed_networks)
    policy.check_address("10.1.2.3")
    policy.check_address("fd00::5")
    with pytest.raises(BlockedAddress):
        policy.check_address("10.1.3.1")
    assert policy.host_allowed("A.B.")


async def test_every_api_face_refuses_a_forbidden_address(daemon: Start, trap: Trap) -> None:
    client = await daemon()
    target = f"http://0x7f.0.0.2:{trap.port}/"
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    for path, body in (
        ("/api/scrape", {"urls": [{"url": target}]}),
        ("/api/v1/scrape", {"url": target, "schema": schema}),
    ):
        resp = await client.post(path, json=body)
        assert resp.status == 400, (path, await resp.text())
        assert "allow_private_networks" in await resp.text()
    assert trap.accepted == []
