"""Only the server's own `Host` and `Origin` are answered: the guard against DNS rebinding.

A web page the user visits can point its own name at 127.0.0.1 and then call the chat, `/chat` and
the MCP tools as if it were this server's page; its requests carry that name in `Host` (and its
origin in `Origin`). The MCP transport specification asks servers to validate `Origin`. Served
without `--auth`, nothing else stands in the way.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from assistant.errors import ConfigError

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")
_NAME = re.compile(r"[a-z0-9_]([a-z0-9._-]*[a-z0-9_])?")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _split(authority: str, default_port: int) -> tuple[str, int] | None:
    """`Name:port` (or `[v6]:port`, or without a port) as (lower-case name, port); None if malformed."""
    try:
        parts = urlsplit(f"//{authority}")
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    name = name.lower().rstrip(".")
    if not _NAME.fullmatch(name) and _ip(name) is None:
        return None
    return name, port if port is not None else default_port


@dataclass(frozen=True)
class Hosts:
    """The names this server answers to: its address, loopback aliases, names given with --allowed-host."""

    port: int
    tls: bool
    names: frozenset[tuple[str, int | None]]  # (name, port); port None: any port (a proxy's name)
    any_address: bool = False  # served on every interface: any IP address of this machine is its own

    @classmethod
    def served(cls, host: str, port: int, *, tls: bool, allowed: Iterable[str] = ()) -> Hosts:
        """The names a server listening on `host:port` answers to, and the `allowed` NAME[:PORT] too."""
        host = host.strip().strip("[]").lower()
        names: set[tuple[str, int | None]] = {(host, port)}
        address = _ip(host)
        wildcard = host in _WILDCARDS
        if host == "localhost" or (address is not None and address.is_loopback) or wildcard:
            names.update((name, port) for name in _LOOPBACK_NAMES)
        if wildcard:  # what this machine calls itself, as a browser on the network would name it
            names.update((name.lower(), port) for name in {socket.gethostname(), socket.getfqdn()})
        for given in allowed:
            split = _split(given.strip(), 0)
            if split is None:
                raise ConfigError(f"--allowed-host {given!r}: give a host name, or NAME:PORT")
            name, given_port = split
            names.add((name, given_port or None))
        return cls(port, tls, frozenset(names), any_address=wildcard)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def allows(self, authority: str, default_port: int | None = None) -> bool:
        """Whether `authority` (a Host header, or an Origin's host[:port]) names this server."""
        split = _split(authority, default_port if default_port is not None else (443 if self.tls else 80))
        if split is None:
            return False
        name, port = split
        if (name, port) in self.names or (name, None) in self.names:
            return True
        # On every interface, an address literal cannot be a rebound name: it is one of ours or unreachable.
        return self.any_address and port == self.port and _ip(name) is not None

    def allows_origin(self, origin: str) -> bool:
        """Whether an `Origin` header is one of this server's own pages (never `null`)."""
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or not parts.netloc:
            return False
        return self.allows(parts.netloc, 443 if parts.scheme == "https" else 80)


class HostGuard:
    """ASGI middleware: 403 for a request whose `Host` is not this server, or whose `Origin` is not its own.

    It sits in front of everything Gradio serves (the page, its API, `/chat`, the MCP endpoints), with
    or without `--auth`. Clients that are not browsers (gradio_client, MCP clients, curl) send the
    `Host` they connected to and no `Origin`.
    """

    def __init__(self, app: Any, hosts: Hosts) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, unless it names another host or comes from another site's page."""
        if scope["type"] in ("http", "websocket") and (why := self.refusal(scope)):
            if scope["type"] == "websocket":  # closed before it is accepted: uvicorn answers 403
                await send({"type": "websocket.close", "code": 1008})
                return
            from starlette.responses import PlainTextResponse

            await PlainTextResponse(why, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: dict[str, Any]) -> str | None:
        """Say why a request is refused, or None if it names this server and comes from its own page."""
        headers = dict(scope.get("headers") or ())
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.hosts.allows(host):
            return (
                "this server answers only to its own address: the Host header names another "
                "(serve with --allowed-host NAME to add a name it is reached by)\n"
            )
        origin = headers.get(b"origin")
        if origin is not None and not self.hosts.allows_origin(origin.decode("latin-1")):
            return "requests from another site's pages are refused (the Origin header is not this server)\n"
        return None
