"""Short-lived stream tokens, so a browser's EventSource never carries the API key in a URL.

A token names the owner (a digest of the key, never the key) and optionally one job, and is
signed with a secret made when the daemon starts: tokens do not outlive the process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import msgspec

TOKEN_TTL_S = 600


class Claims(msgspec.Struct, array_like=True):
    owner: str
    job_id: str | None
    expires: int


class TokenSigner:
    def __init__(
        self,
        secret: bytes | None = None,
        ttl_s: int = TOKEN_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self.clock = clock  # unix time; replaceable, so expiry can be tested without waiting

    def mint(self, owner: str, job_id: str | None) -> tuple[str, int]:
        expires = int(self.clock()) + self.ttl_s
        body = _b64(msgspec.json.encode(Claims(owner, job_id, expires)))
        return f"{body}.{self._sign(body)}", expires

    def verify(self, token: str) -> Claims | None:
        body, _, signature = token.partition(".")
        # As bytes: compare_digest refuses a str with non-ASCII characters (TypeError); a
        # query may also decode to lone surrogates, which only surrogatepass encodes.
        expected = self._sign(body).encode()
        if not body or not hmac.compare_digest(_bytes(signature), expected):
            return None
        try:
            claims = msgspec.json.decode(_unb64(body), type=Claims)
        except (msgspec.DecodeError, ValueError):
            return None
        return claims if claims.expires >= self.clock() else None

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, _bytes(body), hashlib.sha256).digest())


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
