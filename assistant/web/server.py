"""Serving the web chat: who may reach it, launching Gradio (and its MCP server), nothing else.

`serve` refuses to listen beyond this machine without a password, checks the MCP extra, the port,
the login's source and the TLS files (`access`) before anything slow loads, puts the MCP login in
front of Gradio's MCP endpoints and lists only our tools.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence

import gradio as gr
from starlette.middleware import Middleware

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.mcp.login import MCP_PATH, McpLogin
from assistant.mcp.tools import TOOLS
from assistant.pipeline import Assistant
from assistant.web.access import check_port, check_tls, login
from assistant.web.hosts import HostGuard, Hosts
from assistant.web.render import CSS
from assistant.web.ui import build

# System fonts: the default theme would make every browser fetch fonts from Google.
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)


def check_exposure(host: str, auth: str | None, insecure: bool) -> tuple[str, str] | None:
    """Refuse to serve beyond this machine without a password (unless `insecure`); parse `user:pass`."""
    credentials = None
    if auth is not None:
        user, _, password = auth.partition(":")
        if not user or not password:
            raise ConfigError("--auth must be USER:PASSWORD, both non-empty")
        credentials = (user, password)
    if credentials is None and not insecure and not _loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without a password: anyone who can reach it could use it; "
            "add --auth USER:PASSWORD (or --insecure if the network is trusted)"
        )
    return credentials


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _only_our_tools(app: gr.Blocks) -> None:
    """List and serve only `mcp.tools.TOOLS` over MCP.

    Gradio makes a tool of every public API endpoint; `/chat` is one (for gradio_client), but an
    MCP client would get its dict as a Python repr: `ask` is its MCP form.
    """
    server = app.mcp_server_obj
    if server is not None:
        server.tool_to_endpoint = {n: e for n, e in server.tool_to_endpoint.items() if n in TOOLS}


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    auth: str | None = None,
    auth_file: str | None = None,
    insecure: bool = False,
    mcp: bool = False,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> None:
    """Serve the chat (and with `mcp` the MCP tools) on `host:port` until interrupted; never a share link.

    The login is `auth`, else the file `auth_file`, else `$ASSISTANT_AUTH`; with `ssl_certfile` (and
    `ssl_keyfile`) it is served over https. Only requests naming `host:port` (or a loopback alias,
    or one of `allowed_hosts`) and from no other site's page are answered (`hosts.HostGuard`).
    """
    # Everything that can be refused is, before anything slow is loaded.
    credentials = check_exposure(host, login(auth, auth_file), insecure)
    if mcp:
        check_mcp_installed()
    tls = check_tls(ssl_certfile, ssl_keyfile)
    check_port(host, port)
    hosts = Hosts.served(host, port, tls=tls, allowed=allowed_hosts)
    app = build(Assistant(settings), mcp=mcp)
    # DNS rebinding: another site's page must not reach the page, its API or the tools (the first,
    # so the outermost). Gradio's login does not cover its MCP endpoints: with a password, they ask
    # for it too.
    middleware = [Middleware(HostGuard, hosts=hosts)]
    if mcp and credentials:
        middleware.append(Middleware(McpLogin, credentials=credentials))
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            auth=credentials,
            inbrowser=False,
            quiet=True,
            ssr_mode=False,
            mcp_server=mcp,
            enable_monitoring=False,
            footer_links=["api"],
            theme=THEME,
            css=CSS,
            app_kwargs={"middleware": middleware},
            prevent_thread_lock=True,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            # Only Gradio's check that it answers, made to itself at localhost: a certificate for
            # the server's public name (or a self-signed one) does not name that.
            ssl_verify=False,
        )
    except OSError:  # Gradio's own check: the port was taken while the models loaded
        raise ConfigError(f"port {port} on {host} was taken meanwhile; give another --port") from None
    _only_our_tools(app)
    scheme = "https" if tls else "http"
    print(f"assistant: serving on {scheme}://{host}:{port} (Ctrl-C stops)", file=sys.stderr)
    if mcp:
        print(
            f"assistant: MCP server (streamable HTTP) at {scheme}://{host}:{port}{MCP_PATH}/", file=sys.stderr
        )
    app.block_thread()


def check_mcp_installed() -> None:
    """Say how to install the MCP extra when it is missing (Gradio would only say it late, half-started)."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--mcp needs the MCP extra: pip install 'arxiv-assistant[mcp]' (or -e '.[mcp]' in a checkout)"
        ) from None
