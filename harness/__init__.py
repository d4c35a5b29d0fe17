"""Shared by the tests and the benchmarks: real servers started on 127.0.0.1 (`servers`) and the chat
driver through `gradio_client` (`chats`). Neither `tests/` nor `bench/` imports the other; both import
this. Not part of the package: the wheel ships only `assistant/`.
"""
