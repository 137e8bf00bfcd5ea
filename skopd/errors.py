"""Exceptions that carry their HTTP status, and the one JSON shape every error leaves in."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec


class ErrorResponse(msgspec.Struct):
    """Skop's ErrorResponse."""

    error: bool
    message: str
    status_code: int
    path: str
    timestamp: datetime


class ApiError(Exception):
    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class TooManyRequests(ApiError):
    status = 429


class Unavailable(ApiError):
    status = 503


def error_body(status: int, message: str, path: str) -> bytes:
    return msgspec.json.encode(
        ErrorResponse(
            error=True,
            message=message,
            status_code=status,
            path=path,
            timestamp=datetime.now(UTC),
        )
    )
