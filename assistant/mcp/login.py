"""The `--auth` login for Gradio's MCP endpoints (HTTP Basic), which Gradio's own login leaves open."""

from __future__ import annotations

import base64
import secrets
from typing import Any

# Gradio mounts its MCP server (streamable HTTP, SSE, the tools' schema, a landing page) here.
MCP_PATH = "/gradio_api/mcp"
REALM = 'Basic realm="arxiv-assistant MCP", charset="UTF-8"'


class McpLogin:
    """ASGI middleware: a request under `MCP_PATH` needs `Authorization: Basic` with the login, else 401.

    Gradio's `auth=` guards the page and its API, but with gradio 6.31 an MCP client without any
    credentials could list the tools and call every unqueued one (tests/test_mcp.py checks both).
    MCP clients send HTTP headers, not the page's login cookie; Basic is what they can all send.
    """

    def __init__(self, app: Any, credentials: tuple[str, str]) -> None:
        self.app = app
        user, password = credentials
        self._expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, unless it is for the MCP server without the right credentials."""
        if scope["type"] == "http" and _is_mcp(scope) and not self._logged_in(scope):
            from starlette.responses import PlainTextResponse

            refusal = PlainTextResponse(
                "this MCP server needs the login given to `assistant serve --auth` (HTTP Basic)\n",
                status_code=401,
                headers={"WWW-Authenticate": REALM},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _logged_in(self, scope: dict[str, Any]) -> bool:
        given = dict(scope.get("headers") or ()).get(b"authorization", b"")
        return secrets.compare_digest(given, self._expected)


def _is_mcp(scope: dict[str, Any]) -> bool:
    # Routes match the path below the app's root path (as Starlette's own routing does).
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == MCP_PATH or path.startswith(MCP_PATH + "/")
