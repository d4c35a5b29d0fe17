"""Package `mcp`, a front end: the MCP server's tools and its login.

It owns the tools (`tools`: search_papers, ask, get_paper) and the login in front of Gradio's MCP
endpoints (`login`). It may import every stage up to `pipeline`, and `bibliography`; `web` serves it.
"""
