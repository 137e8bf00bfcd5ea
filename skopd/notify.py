"""systemd's readiness protocol (sd_notify): one datagram to `$NOTIFY_SOCKET`, no library."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("skopd.notify")

SEND_TIMEOUT_S = 1.0


def notify(state: str) -> None:
    """Tell the service manager `state`, e.g. "READY=1", "STOPPING=1" or "STATUS=...", several
    joined by newlines. Does nothing outside systemd and never raises: the daemon must not
    fail because its supervisor could not be told something."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract socket
    elif not address.startswith("/"):
        if address:
            log.debug("NOTIFY_SOCKET %r is not a Unix socket path; not notifying", address)
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.debug("could not notify the service manager of %r: %s", state, exc)
