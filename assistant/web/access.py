"""What `serve` checks before anything slow loads: the port.

Each refusal is one `ConfigError` line that says what to do, and comes before a model is loaded.
"""

from __future__ import annotations

import errno
import socket

from assistant.errors import ConfigError

# Addresses a bind may skip when another of the host's addresses works, as asyncio's (and so
# uvicorn's) create_server does: an IPv6 address of `localhost` on a machine without IPv6.
_SKIPPED = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)


def check_port(host: str, port: int) -> None:
    """Refuse a port out of range, taken, or on an address this machine does not have, in one line."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: give a port from 1 to 65535")
    cannot = f"cannot listen on {host}:{port}"
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"{cannot} ({exc.strerror}); give another --host") from None
    failures: list[OSError] = []
    for family, kind, protocol, _, address in addresses:
        # SO_REUSEADDR as uvicorn sets it: a port left in TIME_WAIT is free, one listened on is not.
        with socket.socket(family, kind, protocol) as trial:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                trial.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(
                        f"port {port} on {host} is in use: stop what listens there, or give another --port"
                    ) from None
                failures.append(exc)
    if failures and (len(failures) == len(addresses) or any(e.errno not in _SKIPPED for e in failures)):
        reason = failures[0].strerror or type(failures[0]).__name__
        raise ConfigError(f"{cannot} ({reason}); give another --host or --port")
