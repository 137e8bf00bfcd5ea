"""Hostile file names never leave the job's folder.

Names come from link text, from the URL's last segment and from Content-Disposition
(`filename=` and RFC 5987 `filename*=`), both on a link that does not look like a document
and on a document link that says nothing of its own. For each hostile name, a site offers
four documents named by it in those ways; the job downloads them all, and every file lands
directly inside `documents_dir/<job_id>/` with a safe, unique name, is served back intact,
and nothing appears anywhere else.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd.relevance.doctext import DocTextError, extract_text
from skopd.web.state import CONFIG
from tests.conftest import Daemon, submit, wait_done

Client = TestClient[web.Request, web.Application]
PROMPT = "board meeting minutes 2024"

HOSTILE: dict[str, str] = {
    "parent": "../../etc/x",
    "parent_deep": "../../../../../../../../tmp/escaped",
    "absolute": "/etc/passwd",
    "backslashes": "..\\..\\windows\\win.ini",
    "nul": "minutes\0.txt\0../../x",
    "long": "m" * 1000,
    "long_multibyte": "é" * 150 + "€" * 100,  # 600 UTF-8 bytes, the URL stays short enough
    "con": "CON",
    "device_with_extension": "nul.txt",
    "lpt": "LPT1",
    "dot": ".",
    "dotdot": "..",
    "hidden": ".hidden",
    "rtl_override": "minutes\u202etxt.exe",
    "zero_width": "min\u200butes\ufeff\u2060",
    "controls": "a\r\nX-Injected: 1\t\x1b[31mred\x7f",
    "quotes": "a\"b'c`d;e=f",
    "percent": "%2e%2e%2f%2e%2e%2fetc",
    "only_symbols": "<>:|?*",
    "emoji": "minutes \U0001f600 2024",
    "combining": "Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o" * 20,
    "fullwidth_slash": "..\uff0f..\uff0fetc\uff0fx",
}


def _site(names: list[str]) -> tuple[web.Application, dict[str, bytes]]:
    """Each name four times: as link text, as the URL's file name, in Content-Disposition
    (of a link with no extension, and of a document link with no text)."""
    bodies: dict[str, bytes] = {}
    links: list[str] = []
    for i, name in enumerate(names):
        text = web_escape(name)
        bodies[f"/t/{i}"] = _ppt(f"by link text {i}")
        links.append(f'<a href="/t/{i}/x.ppt">{text}</a>')
        bodies[f"/u/{i}"] = _ppt(f"by url {i}")
        links.append(f'<a href="/u/{i}/{quote(name, safe="")}.ppt"></a>')
        bodies[f"/cd/{i}"] = _ppt(f"by disposition {i}")
        links.append(f'<a href="/cd/{i}"></a>')
        bodies[f"/dd/{i}"] = _ppt(f"by disposition of a document link {i}")
        links.append(f'<a href="/dd/{i}/8812.ppt"></a>')

    async def home(_: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>" + "".join(links) + "</body></html>", content_type="text/html"
        )

    async def document(request: web.Request) -> web.Response:
        # /t/<i>/<name>, /u/<i>/<name>, /cd/<i>, /dd/<i>/<name>: the URL's name is not read.
        kind, _, rest = request.raw_path.lstrip("/").partition("/")
        index = rest.partition("/")[0]
        body = bodies.get(f"/{kind}/{index}")
        if body is None:
            raise web.HTTPNotFound()
        headers = {}
        if kind in ("cd", "dd"):
            name = names[int(index)]
            ascii_form = name.encode("ascii", "backslashreplace").decode().replace('"', "'")
            ascii_form = "".join(c for c in ascii_form if c.isprintable())
            headers["Content-Disposition"] = (
                f'attachment; filename="{ascii_form}.ppt"; '
                f"filename*=UTF-8''{quote(name + '.ppt', safe='')}"
            )
        return web.Response(body=body, content_type=PPT, headers=headers)

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get(r"/{tail:[\s\S]+}", document)
    return app, bodies


PPT = "application/vnd.ms-powerpoint"


def _ppt(label: str) -> bytes:
    """Bytes that pass for a PowerPoint file (no text is read from that format)."""
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + label.encode() + b"\0" * 512


def web_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


async def _crawl_names(
    client: Client, names: list[str], aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> tuple[dict[str, Any], dict[str, bytes], Path]:
    app, bodies = _site(names)
    server = await aiohttp_server(app, host="127.0.0.1")
    cfg = client.server.app[CONFIG]
    root = Path(cfg.base_dir)
    before = _snapshot(root)
    job_id = await submit(client, str(server.make_url("/")), PROMPT, confidence_threshold=0.0)
    status = await wait_done(client, job_id, timeout=60)
    assert status["status"] == "completed", status
    results: dict[str, Any] = await (await client.get(f"/scrape/results/{job_id}")).json()
    folder = cfg.documents_path / job_id
    new = _snapshot(root) - before
    outside = {p for p in new if folder != p and folder not in p.parents}
    outside = {p for p in outside if not p.name.startswith("skopd.db") and p != folder.parent}
    assert outside == set(), sorted(map(str, outside))
    return results, bodies, folder


def _check_files(results: dict[str, Any], folder: Path, expected: int) -> list[str]:
    docs = results["documents"]
    assert len(docs) == expected, [d["url"] for d in docs]
    files = sorted(os.listdir(folder))
    assert len(files) == expected, files
    for name in files:
        path = folder / name
        assert path.resolve().parent == folder.resolve(), name
        assert path.is_file() and not path.is_symlink(), name
        assert name == os.path.basename(name) and "\\" not in name and "\0" not in name
        assert not name.startswith("."), name
        assert len(name.encode()) <= 255, name
        assert all(unicodedata.category(c)[0] != "C" for c in name), repr(name)
        assert unicodedata.normalize("NFC", name) == name
    for doc in docs:  # names shown to people carry no control or bidi-override characters
        assert all(unicodedata.category(c)[0] != "C" for c in doc["name"]), repr(doc["name"])
    folded = {unicodedata.normalize("NFKC", n).casefold() for n in files}
    assert len(folded) == len(files), files  # unique on case-insensitive file systems too
    return files


async def _fetch_back(client: Client, results: dict[str, Any], bodies: dict[str, bytes]) -> None:
    for doc in results["documents"]:
        resp = await client.get(doc["download_url"])
        assert resp.status == 200
        disposition = resp.headers["Content-Disposition"]
        assert "\r" not in disposition and "\n" not in disposition
        body = await resp.read()
        assert body in bodies.values()
        assert doc["sha256"]


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_a_hostile_name_lands_inside_the_job_folder(
    case: str, client: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    results, bodies, folder = await _crawl_names(client, [HOSTILE[case]], aiohttp_server)
    _check_files(results, folder, expected=4)
    await _fetch_back(client, results, bodies)


async def test_names_differing_only_in_case_or_normalisation_stay_apart(
    client: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    names = [
        "Minutes",
        "minutes",
        "MINUTES",
        "caf\u00e9",  # composed
        "cafe\u0301",  # decomposed: the same text once normalised
        "\ufb01le",  # the "fi" ligature
        "file",
    ]
    results, bodies, folder = await _crawl_names(client, names, aiohttp_server)
    files = _check_files(results, folder, expected=4 * len(names))
    assert len(set(files)) == len(files)
    await _fetch_back(client, results, bodies)


async def test_a_document_link_that_says_nothing_is_named_by_its_content_disposition(
    client: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """/files/8812.ppt with no link text is called what the server's Content-Disposition
    says; a link with words of its own keeps its name."""

    async def home(_: web.Request) -> web.Response:
        return web.Response(
            text='<html><body><ul><li><a href="/files/8812.ppt"></a></li>'
            '<li><a href="/files/8813.ppt">Board meeting minutes 2024, March</a></li>'
            "</ul></body></html>",
            content_type="text/html",
        )

    async def document(request: web.Request) -> web.Response:
        served = {"8812": "Board meeting minutes 2024 (January).ppt", "8813": "scan0042.ppt"}
        name = served[request.match_info["n"]]
        return web.Response(
            body=_ppt(name),
            content_type=PPT,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/files/{n}.ppt", document)
    server = await aiohttp_server(app, host="127.0.0.1")
    job_id = await submit(client, str(server.make_url("/")), PROMPT, confidence_threshold=0.0)
    status = await wait_done(client, job_id, timeout=60)
    assert status["status"] == "completed", status
    results = await (await client.get(f"/scrape/results/{job_id}")).json()
    names = {doc["url"].rsplit("/", 1)[1]: doc["name"] for doc in results["documents"]}
    assert names == {
        "8812.ppt": "Board meeting minutes 2024 (January)",
        "8813.ppt": "Board meeting minutes 2024, March",
    }
    files = sorted(os.listdir(client.server.app[CONFIG].documents_path / job_id))
    assert any(f.endswith("_Board meeting minutes 2024_January.ppt") for f in files), files


def _big_site(count: int, size: int) -> web.Application:
    """`count` relevant documents of `size` bytes each, streamed without a Content-Length."""

    async def home(_: web.Request) -> web.Response:
        links = "".join(
            f'<a href="/minutes-2024-{i}.ppt">Board meeting minutes 2024 part {i}</a>'
            for i in range(count)
        )
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    async def document(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": PPT})
        await resp.prepare(request)
        body = _ppt(request.path) + b"\x01" * size
        for start in range(0, size, 65536):
            await resp.write(body[start : start + 65536])
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/{name}.ppt", document)
    return app


async def _run(client: Client, server: TestServer) -> tuple[dict[str, Any], Path]:
    job_id = await submit(client, str(server.make_url("/")), PROMPT)
    status = await wait_done(client, job_id, timeout=60)
    assert status["status"] == "completed", status
    results: dict[str, Any] = await (await client.get(f"/scrape/results/{job_id}")).json()
    return results, client.server.app[CONFIG].documents_path / job_id


async def test_low_disk_space_stops_downloads_with_one_warning(
    tmp_path: Path,
    daemon_factory: Callable[..., Awaitable[Daemon]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    st = os.statvfs(tmp_path)
    free_mb = st.f_bavail * st.f_frsize // (1024 * 1024)
    d = await daemon_factory(storage={"min_free_disk_mb": free_mb + 1024})
    assert d.client is not None
    server = await aiohttp_server(_big_site(3, 200_000), host="127.0.0.1")
    results, folder = await _run(d.client, server)
    assert results["total_documents_downloaded"] == 0
    assert results["total_documents_found"] == 3  # found, not downloaded
    disk = [w for w in results["warnings"] if "storage.min_free_disk_mb" in w]
    assert len(disk) == 1, results["warnings"]
    assert os.listdir(folder) == []


async def test_the_job_byte_quota_stops_downloads_mid_file(
    daemon_factory: Callable[..., Awaitable[Daemon]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    # One request at a time, so which file crosses the quota is certain: the second.
    d = await daemon_factory(
        jobs={"max_job_bytes_mb": 1}, crawler={"per_host_concurrency": 1, "concurrency": 1}
    )
    assert d.client is not None
    server = await aiohttp_server(_big_site(3, 600_000), host="127.0.0.1")
    results, folder = await _run(d.client, server)
    assert results["total_documents_downloaded"] == 1
    assert results["total_documents_found"] == 3
    quota = [w for w in results["warnings"] if "jobs.max_job_bytes_mb" in w]
    assert len(quota) == 1, results["warnings"]
    [name] = os.listdir(folder)  # the cut file was removed
    assert (folder / name).stat().st_size > 600_000


async def test_a_lost_file_is_a_404_that_shows_no_server_path(
    client: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    server = await aiohttp_server(_big_site(1, 1000), host="127.0.0.1")
    results, folder = await _run(client, server)
    [doc] = results["documents"]
    for path in folder.iterdir():
        path.unlink()
    resp = await client.get(doc["download_url"])
    assert resp.status == 404
    body = await resp.json()
    assert "no longer stored" in body["message"]
    root = str(client.server.app[CONFIG].documents_path)
    assert root not in body["message"] and str(folder) not in await resp.text()


@pytest.mark.parametrize("shape", ["missing", "folder"])
async def test_an_unreadable_document_error_shows_no_server_path(
    shape: str, tmp_path: Path
) -> None:
    """The library's error names the file it could not read; the message a client gets
    (unreadable_document) does not."""
    path = tmp_path / "job_x" / ".part-0123abcd"
    if shape == "folder":
        path.mkdir(parents=True)
    with pytest.raises(DocTextError) as caught:
        await extract_text(path, "pdf")
    message = str(caught.value)
    assert message.startswith("unreadable pdf file: "), message
    assert str(tmp_path) not in message and ".part-" not in message, message
