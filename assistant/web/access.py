"""What `serve` checks before anything slow loads: the port, the login's source, the TLS files.

Each refusal is one `ConfigError` line that says what to do, and comes before a model is loaded.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from assistant.errors import ConfigError

AUTH_ENV = "ASSISTANT_AUTH"
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


def login(auth: str | None, auth_file: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """Return the `USER:PASSWORD` login: `--auth`, else `--auth-file`'s content, else `$ASSISTANT_AUTH`."""
    env = os.environ if env is None else env
    if auth is not None and auth_file is not None:
        raise ConfigError("give --auth or --auth-file, not both")
    if auth is not None:
        return auth
    if auth_file is not None:
        return read_login_file(auth_file)
    given = env.get(AUTH_ENV) or None
    if given is not None and not all(given.partition(":")[::2]):
        raise ConfigError(f"${AUTH_ENV} must be USER:PASSWORD, both non-empty")
    return given


def read_login_file(value: str) -> str:
    """Return the one `USER:PASSWORD` line of the file `value` names; refuse one others may read.

    The rule is ssh's for a private key (and `keys.py`'s for the API key file, which only warns):
    a file its group or others can read is refused, since the password is the only guard.
    """
    path = Path(value).expanduser()
    shown = repr(str(path))
    fix = f"put one line USER:PASSWORD in it and run chmod 600 {shown}"
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--auth-file {shown}: cannot read it ({exc.strerror or exc}); {fix}") from None
    except UnicodeDecodeError:  # its message would quote a byte of the password
        raise ConfigError(f"--auth-file {shown} is not UTF-8 text; {fix}") from None
    if mode & 0o077:
        raise ConfigError(
            f"--auth-file {shown}: permissions {mode & 0o777:04o} are too open (group or others can "
            f"read the password); run chmod 600 {shown}"
        )
    lines = [line for line in text.splitlines() if line.strip()]
    user, _, password = lines[0].partition(":") if len(lines) == 1 else ("", "", "")
    if not user or not password:
        raise ConfigError(f"--auth-file {shown} must hold one line USER:PASSWORD, both non-empty; {fix}")
    return lines[0]


def check_tls(certfile: str | None, keyfile: str | None) -> bool:
    """Return whether to serve https; refuse a key without a certificate, or files that cannot be read."""
    if keyfile is not None and certfile is None:
        raise ConfigError("--ssl-keyfile needs --ssl-certfile (the certificate the key belongs to)")
    for flag, value in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if value is not None:
            try:
                Path(value).expanduser().open("rb").close()
            except OSError as exc:
                raise ConfigError(
                    f"{flag} {value!r}: cannot read it ({exc.strerror or exc}); give a PEM file"
                ) from None
    return certfile is not None
