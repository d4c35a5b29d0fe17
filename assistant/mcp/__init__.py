"""The MCP server's tools and its login."""
