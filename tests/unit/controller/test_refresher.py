"""The Refresher coalesces bursts of events into one refresh per object at a time."""

from __future__ import annotations

import asyncio

import kopf
import pytest

from tideserve.controller import refresher, store

pytestmark = pytest.mark.unit


async def test_a_burst_of_events_for_one_object_runs_few_refreshes() -> None:
    runs: list[store.Key] = []

    async def work(key: store.Key) -> None:
        runs.append(key)
        await asyncio.sleep(0.05)

    coalescer = refresher.Refresher(work, debounce=0.01)
    for _ in range(50):
        coalescer.schedule(("ns", "a"))
    coalescer.schedule(("ns", "b"))
    await asyncio.sleep(0.3)
    assert runs.count(("ns", "a")) == 1
    assert runs.count(("ns", "b")) == 1
    await coalescer.close()


async def test_an_event_during_a_refresh_triggers_one_more() -> None:
    runs = 0
    started = asyncio.Event()

    async def work(key: store.Key) -> None:
        nonlocal runs
        runs += 1
        started.set()
        await asyncio.sleep(0.05)

    coalescer = refresher.Refresher(work, debounce=0.01)
    coalescer.schedule(("ns", "a"))
    await started.wait()
    coalescer.schedule(("ns", "a"))
    coalescer.schedule(("ns", "a"))
    await asyncio.sleep(0.3)
    assert runs == 2
    await coalescer.close()


async def test_a_failing_refresh_does_not_stop_later_ones() -> None:
    runs = 0

    async def work(key: store.Key) -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("boom")

    coalescer = refresher.Refresher(work, debounce=0.01)
    coalescer.schedule(("ns", "a"))
    await asyncio.sleep(0.1)
    coalescer.schedule(("ns", "a"))
    await asyncio.sleep(0.1)
    assert runs == 2
    await coalescer.close()


async def test_a_retry_delay_does_not_hold_a_slot_others_need() -> None:
    runs: list[store.Key] = []

    async def work(key: store.Key) -> None:
        runs.append(key)
        if key == ("ns", "a"):
            raise kopf.TemporaryError("later", delay=10)

    coalescer = refresher.Refresher(work, debounce=0.01, concurrency=1)
    coalescer.schedule(("ns", "a"))
    await asyncio.sleep(0.05)
    coalescer.schedule(("ns", "b"))
    await asyncio.sleep(0.1)
    assert ("ns", "b") in runs
    await coalescer.close()
