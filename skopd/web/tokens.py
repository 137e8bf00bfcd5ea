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

import msgspec

TOKEN_TTL_S = 600


class Claims(msgspec.Struct, array_like=True):
    owner: str
    job_id: str | None
    expires: int


class TokenSigner:
    def __init__(self, secret: bytes | None = None, ttl_s: int = TOKEN_TTL_S) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s

    def mint(self, owner: str, job_id: str | None) -> tuple[str, int]:
        expires = int(time.time()) + self.ttl_s
        body = _b64(msgspec.json.encode(Claims(owner, job_id, expires)))
        return f"{body}.{self._sign(body)}", expires

    def verify(self, token: str) -> Claims | None:
        body, _, signature = token.partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            claims = msgspec.json.decode(_unb64(body), type=Claims)
        except (msgspec.DecodeError, ValueError):
            return None
        return claims if claims.expires >= time.time() else None

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
