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

    coalescer = refresher.Refresher(work, debounce=0.01)
    for _ in range(50):
        coalescer.schedule(("ns", "a"))
    coalescer.schedule(("ns", "b"))
    await asyncio.wait_for(coalescer.idle(), 5)
    assert runs.count(("ns", "a")) == 1
    assert runs.count(("ns", "b")) == 1
    await coalescer.close()


async def test_an_event_during_a_refresh_triggers_one_more() -> None:
    runs = 0
    started = asyncio.Event()
    release = asyncio.Event()

    async def work(key: store.Key) -> None:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()

    coalescer = refresher.Refresher(work, debounce=0.01)
    coalescer.schedule(("ns", "a"))
    await asyncio.wait_for(started.wait(), 5)
    coalescer.schedule(("ns", "a"))
    coalescer.schedule(("ns", "a"))
    release.set()
    await asyncio.wait_for(coalescer.idle(), 5)
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
    await asyncio.wait_for(coalescer.idle(), 5)
    coalescer.schedule(("ns", "a"))
    await asyncio.wait_for(coalescer.idle(), 5)
    assert runs == 2
    await coalescer.close()


async def test_a_retry_delay_does_not_hold_a_slot_others_need() -> None:
    failed, b_ran = asyncio.Event(), asyncio.Event()

    async def work(key: store.Key) -> None:
        if key == ("ns", "a"):
            failed.set()
            raise kopf.TemporaryError("later", delay=10)
        b_ran.set()

    coalescer = refresher.Refresher(work, debounce=0.01, concurrency=1)
    coalescer.schedule(("ns", "a"))
    await asyncio.wait_for(failed.wait(), 5)
    coalescer.schedule(("ns", "b"))
    # Well inside a's 10 s back-off: b got the one slot while a waits to retry.
    await asyncio.wait_for(b_ran.wait(), 5)
    await coalescer.close()
