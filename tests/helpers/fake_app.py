"""A stand-in for the Gradio app, so `serve` can be run without serving: it records how it was launched."""

from __future__ import annotations

from typing import Any

import pytest


class FakeApp:
    """Stands in for the Gradio app: records how it would be launched."""

    launched: dict[str, Any] = {}
    mcp_server_obj = None

    def launch(self, **kwargs: Any) -> None:
        FakeApp.launched = kwargs

    def block_thread(self) -> None:
        """Return at once (the real one serves until Ctrl-C)."""


def launch_nothing(monkeypatch: pytest.MonkeyPatch) -> type[FakeApp]:
    """Make `serve` load no model, build a `FakeApp` and check no port (7860 may be in use here)."""
    import assistant.web.server

    FakeApp.launched = {}
    monkeypatch.setattr(assistant.web.server, "Assistant", lambda settings: None)
    monkeypatch.setattr(assistant.web.server, "build", lambda bot, **_: FakeApp())
    monkeypatch.setattr(assistant.web.server, "check_port", lambda host, port: None)
    return FakeApp
