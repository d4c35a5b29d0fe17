"""Generators driven by a thread of their own, so that a reader in any thread may close or drop them."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
LOCK_POLL_SECONDS = 0.2  # how often a worker waiting for the lock looks whether its reader has gone
# The stop events of every driven stream this thread works for: an inner stream (the model's tokens)
# stops as soon as any outer one (the web answer) has lost its reader.
_STOPS: contextvars.ContextVar[tuple[threading.Event, ...]] = contextvars.ContextVar("stops", default=())


class Lock(Protocol):
    """A lock that can be waited for with a timeout (threading.Lock or RLock)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


def cancelled() -> bool:
    """Whether a reader this thread works for has gone (a closed tab): stop early."""
    return any(stop.is_set() for stop in _STOPS.get())


def driven(
    make: Callable[[], Iterator[T]],
    lock: Lock | None,
    *,
    heartbeat: float | None = None,
) -> Iterator[T | None]:
    """Yield what `make()` yields, produced by a worker thread that holds `lock` meanwhile.

    A web server closes an abandoned stream (a closed browser tab) from another thread than the one
    that read it. A lock held inside a generator would then be released by a thread that does not
    own it (an RLock raises, stays held, and every later question hangs), or held for as long as the
    dropped generator lives. Here the worker takes and releases the lock itself; once the reader
    closes or drops this generator, the worker stops at the source's next item (or, waiting for the
    lock, within LOCK_POLL_SECONDS) and closes it, and every stream driven inside it stops too.
    With `heartbeat`, None is yielded after that many seconds without an item, so a server that
    can close a generator only between items (Gradio) gets the chance.
    """
    items: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    stop = threading.Event()

    def drive() -> None:
        _STOPS.set((*_STOPS.get(), stop))
        try:
            while lock is not None and not lock.acquire(timeout=LOCK_POLL_SECONDS):
                if cancelled():
                    items.put((False, None))
                    return
            try:
                source = make()
                try:
                    for item in source:
                        if cancelled():  # the reader has gone: free the lock now
                            break
                        items.put((True, item))
                finally:
                    if close := getattr(source, "close", None):
                        close()
            finally:
                if lock is not None:
                    lock.release()
        except BaseException as exc:  # handed to the reader, raised in its thread
            items.put((False, exc))
        else:
            items.put((False, None))

    def read() -> Iterator[T | None]:
        context = contextvars.copy_context()  # the reader's own stop events, if it is driven too
        threading.Thread(target=context.run, args=(drive,), name="driven-stream", daemon=True).start()
        try:
            while True:
                try:
                    more, item = items.get(timeout=heartbeat)
                except queue.Empty:
                    yield None
                    continue
                if not more:
                    if item is not None:
                        raise item
                    return
                yield item
        finally:
            stop.set()

    return read()
