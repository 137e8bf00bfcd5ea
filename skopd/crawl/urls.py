"""URL handling for the crawler: joining links, de-duplication keys, scope checks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

_TRACKING = frozenset(
    {"gclid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_gl", "igshid", "ref_src"}
)
_SESSION = frozenset({"jsessionid", "phpsessid", "sid", "sessionid"})
_SESSION_PATH_PARAM = re.compile(
    r";(?:jsessionid|phpsessid|sid|sessionid|aspsessionid\w*)=[^/;]*", re.IGNORECASE
)
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Everything RFC 3986 allows in a path or query stays as it is; only the rest is escaped.
_SAFE_CHARS = "!$&'()*+,;=:@/?%-._~[]"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_INVISIBLE = str.maketrans("", "", "\t\n\r")
# Browsers strip C0 controls and spaces around an href.
_STRIP = "".join(chr(c) for c in range(0x21))


def site_key(host: str) -> str:
    """The host as a site identity: lowercase, without one leading "www." and a trailing dot."""
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def same_site(url: str, key: str) -> bool:
    """Whether `url` is http(s) on the site whose `site_key` is `key`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and host is not None and site_key(host) == key


def join_link(base: str, href: str) -> str | None:
    """Resolve `href` against `base` the way a browser follows a link, without the fragment.

    Returns None for what is not a fetchable http(s) link: empty and fragment-only hrefs,
    `javascript:`, `mailto:`, `tel:`, `data:` and any other non-http(s) scheme.
    """
    href = href.strip(_STRIP)
    if "\t" in href or "\n" in href or "\r" in href:
        href = href.translate(_INVISIBLE)
    if not href or href[0] == "#":
        return None
    if "#" in href:
        href = href.partition("#")[0]
    if "\\" in href:
        path, sep, query = href.partition("?")
        href = path.replace("\\", "/") + sep + query
    if ":" in href:
        scheme = _SCHEME.match(href)
        if scheme is not None:
            if scheme.group().lower() not in ("http:", "https:"):
                return None
            return _absolute(href, len(scheme.group()))
    parts = _base_parts(base)
    if parts is None:
        return None
    scheme_name, origin, directory, document = parts
    first = href[0]
    if first == "/":
        if href.startswith("//"):
            return _absolute(scheme_name + ":" + href, len(scheme_name) + 1)
        return _without_dot_segments(origin, href)
    if first == "?":
        return origin + document + href
    return _without_dot_segments(origin, directory + href)


def _absolute(url: str, after_scheme: int) -> str | None:
    if not url.startswith("//", after_scheme):
        return None  # "http:page.html": no browser agrees on what it means
    host_start = after_scheme + 2
    authority_end = len(url)
    for stop in ("/", "?"):
        index = url.find(stop, host_start, authority_end)
        if index != -1:
            authority_end = index
    if authority_end == host_start:
        return None
    return _without_dot_segments(url[:authority_end], url[authority_end:])


def _without_dot_segments(origin: str, rest: str) -> str:
    path, sep, query = rest.partition("?")
    if "/." in path:
        path = _remove_dot_segments(path)
    return origin + path + sep + query


@lru_cache(maxsize=64)
def _base_parts(base: str) -> tuple[str, str, str, str] | None:
    """(scheme, origin, directory path, path) of an http(s) base URL."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    path = parts.path or "/"
    if "/." in path:
        path = _remove_dot_segments(path)
    return parts.scheme, f"{parts.scheme}://{parts.netloc}", path[: path.rfind("/") + 1], path


@lru_cache(maxsize=8192)  # navigation links repeat on every page of a site
def normalize_url(url: str) -> str:
    """The de-duplication key of `url`; the URL fetched stays the page's own.

    Lowercases scheme and host, drops default ports, the fragment, tracking parameters
    (utm_*, gclid, fbclid, ...) and session ids (query and `;jsessionid=` path parameters),
    resolves dot segments, sorts the query parameters by name (stable, blank values kept),
    and normalises percent-encoding. "www.example.org" and "example.org" give the same key,
    because sites serve the same pages under both.
    """
    url = url.strip().partition("#")[0]
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.isalpha():
        return url
    scheme = scheme.lower()
    authority_end = len(rest)
    for stop in ("/", "?"):
        index = rest.find(stop, 0, authority_end)
        if index != -1:
            authority_end = index
    path, _, query = rest[authority_end:].partition("?")
    key = f"{scheme}://{_normalize_netloc(rest[:authority_end], scheme)}{_normalize_path(path)}"
    if query:
        query = _normalize_query(query)
    return f"{key}?{query}" if query else key


def is_route_fragment(fragment: str) -> bool:
    """Whether a URL's fragment (without its "#") names a client-side route of a hash-routed
    app ("/documents/2024", "!/minutes"), a page of its own that only a browser can show;
    any other fragment ("top", "section-2") is a place in the same page."""
    return fragment.startswith(("/", "!/"))


def route_fragment(url: str) -> str | None:
    """The client-side route `url` names (its fragment, see is_route_fragment), or None."""
    _, sep, fragment = url.partition("#")
    return fragment if sep and is_route_fragment(fragment) else None


def route_key(url: str) -> str:
    """The de-duplication key of a page a browser shows: `normalize_url`, keeping the
    fragment when it is a client-side route (see is_route_fragment), as is."""
    route = route_fragment(url)
    key = normalize_url(url)  # without any fragment
    return key if route is None else f"{key}#{route}"


def _normalize_netloc(netloc: str, scheme: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        host, _, port = hostport.partition("]")
        host += "]"
        port = port.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    host = site_key(_idna(host))
    port = port.lstrip("0") or ("0" if port else "")
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return f"{userinfo}@{host}" if at else host


def _idna(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _normalize_path(path: str) -> str:
    if ";" in path:
        path = _SESSION_PATH_PARAM.sub("", path)
    path = _normalize_percent(path)
    if not path:
        return "/"
    if "/." in path:
        path = _remove_dot_segments(path)
    return path


def _remove_dot_segments(path: str) -> str:
    out: list[str] = []
    segments = path.split("/")
    for segment in segments:
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def _normalize_query(query: str) -> str:
    if not query:
        return ""
    kept: list[tuple[str, str]] = []
    for param in query.split("&"):
        if not param:
            continue
        name = unquote(param.partition("=")[0]).lower()
        if _is_noise_param(name):
            continue
        param = _normalize_percent(param)
        kept.append((param.partition("=")[0], param))
    kept.sort(key=lambda item: item[0])
    return "&".join(param for _, param in kept)


def _is_noise_param(name: str) -> bool:
    return (
        name in _TRACKING
        or name in _SESSION
        or name.startswith("utm_")
        or name.startswith("aspsessionid")
    )


def _normalize_percent(text: str) -> str:
    if not text.isascii() or " " in text:
        text = quote(text, safe=_SAFE_CHARS)
    if "%" not in text:
        return text
    return _PERCENT.sub(_percent_replacement, text)


def _percent_replacement(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def path_allowed(url: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether the URL's path passes the include/exclude glob patterns.

    Patterns are fnmatch globs where `*` also crosses "/", matched against the path and
    against path + "?" + query (and their percent-decoded forms). A pattern without a
    leading "/" matches anywhere ("archive/*" acts as "*archive/*"). An empty `include`
    includes everything; `exclude` wins over `include`.
    """
    if not include and not exclude:
        return True
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    path = parts.path or "/"
    candidates = [path]
    if parts.query:
        candidates.append(f"{path}?{parts.query}")
    if "%" in url:
        candidates.extend([unquote(candidate) for candidate in candidates])
    if any(_matches(candidates, pattern) for pattern in exclude):
        return False
    return not include or any(_matches(candidates, pattern) for pattern in include)


def _matches(candidates: list[str], pattern: str) -> bool:
    if not pattern.startswith(("/", "*")):
        pattern = "*" + pattern
    return any(fnmatchcase(candidate, pattern) for candidate in candidates)


def file_name_from_url(url: str) -> str:
    """The last path segment of `url`, percent-decoded, without path parameters ("" if none)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    segment = path.rpartition("/")[2].partition(";")[0]
    return unquote(segment)
