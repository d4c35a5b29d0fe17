"""An MCP client session against a running `assistant serve --mcp`, for the tests that need one."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

TOOL_NAMES = {"search_papers", "ask", "get_paper"}


def session(url: str, calls: list[tuple[str, dict[str, Any]]], headers: dict[str, str] | None) -> Any:
    """Connect as an MCP client, list the tools and make `calls`; return (tools, results)."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def go() -> Any:
        async with (
            streamablehttp_client(url, headers=headers) as (read, write, _),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            tools = (await client.list_tools()).tools
            return tools, [await client.call_tool(name, arguments) for name, arguments in calls]

    # In a thread of its own: Playwright's sync API (tests/test_ui.py) keeps a loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()
