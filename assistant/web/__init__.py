"""Package `web`, a front end: the web chat.

It owns the Gradio page and its callbacks (`ui`), serving it (`server`), what serving checks first
(`access`: port, login, TLS files), the Host and Origin guard (`hosts`), answers and sources
rendered as HTML and Markdown (`render`) and the saved chat transcript (`transcript`). It may import
every stage up to `pipeline`, and the front ends it wraps: `bibliography`, and `mcp` (its tools are
served from the same server). gradio is imported only here and in `mcp/`.
"""
