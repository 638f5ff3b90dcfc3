"""Coalesce bursts of watch events into one refresh per object at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import kopf

from tideserve.controller import store

log = logging.getLogger("tideserve.controller")


class Refresher:
    """Runs `work(key)` after events, at most once at a time per key, coalescing bursts."""

    def __init__(
        self,
        work: Callable[[store.Key], Awaitable[None]],
        debounce: float = 0.5,
        concurrency: int = 8,
    ) -> None:
        self._work = work
        self._debounce = debounce
        self._pending: set[store.Key] = set()
        self._running: dict[store.Key, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)

    def schedule(self, key: store.Key) -> None:
        self._pending.add(key)
        if key not in self._running:
            self._running[key] = asyncio.get_running_loop().create_task(self._run(key))

    async def _run(self, key: store.Key) -> None:
        try:
            while key in self._pending:
                await asyncio.sleep(self._debounce)
                self._pending.discard(key)
                retry_in = None
                async with self._slots:
                    try:
                        await self._work(key)
                    except kopf.TemporaryError as exc:
                        log.warning("refresh of %s/%s failed, retrying: %s", *key, exc)
                        retry_in = exc.delay or 5.0
                    except Exception:
                        log.exception("refresh of %s/%s failed", *key)
                if retry_in is not None:
                    # Wait outside the slot: one object's back-off must not hold up others.
                    await asyncio.sleep(retry_in)
                    self._pending.add(key)
        finally:
            self._running.pop(key, None)

    async def idle(self) -> None:
        """Returns once no refresh is scheduled or running (a retry's back-off counts as
        scheduled)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
