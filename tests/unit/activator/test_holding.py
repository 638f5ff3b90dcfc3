"""The async shell around the held queues, driven with a scripted model-ready probe."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime

import pytest
from tideserve_testbed import held

from tideserve.activator import holding, queueing

pytestmark = pytest.mark.unit

KEY = queueing.EndpointKey("ml", "tiny")
AT_ZERO = queueing.EndpointState(
    key=KEY, model="tiny", ready_replicas=0, max_held_requests=50, wake_deadline_seconds=5
)


def make(state: queueing.EndpointState = AT_ZERO) -> tuple[holding.Activator, held.Probe]:
    return held.activator(state)


async def wait_held(activator: holding.Activator, count: int) -> None:
    await held.wait_held(activator, KEY, count)


async def test_held_requests_are_released_in_arrival_order_once_model_is_ready() -> None:
    activator, probe = make()
    tasks = []
    for i in range(20):
        tasks.append(asyncio.create_task(activator.admit(KEY)))
        await wait_held(activator, i + 1)
    assert activator.demand()[0]["held"] == 20
    activator.upsert(dataclasses.replace(AT_ZERO, ready_replicas=1))
    await asyncio.wait_for(probe.asked.wait(), 5)
    # The probe said not yet: a ready replica is not enough, the model must be.
    assert activator.demand()[0]["held"] == 20
    assert not any(t.done() for t in tasks)
    probe.ready = True
    outcomes = await asyncio.gather(*tasks)
    assert all(isinstance(o, holding.Released) for o in outcomes)
    released = [o for o in outcomes if isinstance(o, holding.Released)]
    assert [o.ticket.seq for o in released] == list(range(20))
    assert [o.forward_seq for o in released] == list(range(1, 21))
    assert activator.demand() == []
    assert await activator.admit(KEY) == queueing.Forward()


async def test_held_request_gets_503_with_reason_after_its_deadline() -> None:
    state = dataclasses.replace(
        AT_ZERO, wake_deadline_seconds=0.05, message="Schedulable NoNodeFits: no GPU node"
    )
    activator, _ = make(state)
    outcome = await activator.admit(KEY)
    assert isinstance(outcome, queueing.Refusal)
    assert outcome.status == 503
    assert "did not become ready within 0.05 s: Schedulable NoNodeFits" in outcome.error
    assert activator.demand() == []


async def test_over_the_cap_answers_429_and_keeps_the_held_ones() -> None:
    activator, probe = make(dataclasses.replace(AT_ZERO, max_held_requests=3))
    held = [asyncio.create_task(activator.admit(KEY)) for _ in range(3)]
    await wait_held(activator, 3)
    refused = await activator.admit(KEY)
    assert isinstance(refused, queueing.Refusal)
    assert refused.status == 429
    probe.ready = True
    activator.upsert(dataclasses.replace(AT_ZERO, ready_replicas=1, max_held_requests=3))
    assert all(isinstance(o, holding.Released) for o in await asyncio.gather(*held))


async def test_off_window_refuses_new_and_held_requests_at_once() -> None:
    activator, _ = make()
    held = asyncio.create_task(activator.admit(KEY))
    await wait_held(activator, 1)
    off_until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    activator.upsert(dataclasses.replace(AT_ZERO, off_until=off_until))
    outcome = await held
    assert isinstance(outcome, queueing.Refusal)
    assert outcome.status == 503
    assert 3590 < outcome.retry_after_seconds <= 3600


async def test_deleting_the_endpoint_answers_its_held_requests() -> None:
    activator, _ = make()
    held = asyncio.create_task(activator.admit(KEY))
    await wait_held(activator, 1)
    activator.remove(KEY)
    outcome = await held
    assert isinstance(outcome, queueing.Refusal)
    assert "deleted" in outcome.error


async def test_a_client_that_goes_away_frees_its_place() -> None:
    activator, _ = make()
    held = asyncio.create_task(activator.admit(KEY))
    await wait_held(activator, 1)
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    assert activator.demand() == []


async def test_shutdown_answers_every_held_request_with_a_retryable_503() -> None:
    activator, _ = make()
    held = [asyncio.create_task(activator.admit(KEY)) for _ in range(5)]
    await wait_held(activator, 5)
    activator.close()
    outcomes = await asyncio.gather(*held)
    assert {o.status for o in outcomes if isinstance(o, queueing.Refusal)} == {503}
    assert len(outcomes) == 5


async def test_unknown_endpoint_is_404_once_listed() -> None:
    activator, _ = make()
    outcome = await activator.admit(queueing.EndpointKey("ml", "other"))
    assert isinstance(outcome, queueing.Refusal)
    assert outcome.status == 404


async def test_probing_stops_when_nobody_waits_and_resumes_with_the_next_request() -> None:
    activator, probe = make(dataclasses.replace(AT_ZERO, ready_replicas=1))
    prober = activator.endpoints[KEY].prober
    assert prober is not None
    await asyncio.wait_for(prober, 5)  # probed once, found nobody waiting, stopped
    assert probe.calls == 1
    held = asyncio.create_task(activator.admit(KEY))
    await wait_held(activator, 1)
    probe.ready = True
    assert isinstance(await asyncio.wait_for(held, 2), holding.Released)
    assert probe.calls >= 2


async def test_draining_holds_nothing_new_but_still_releases_what_is_held() -> None:
    activator, probe = make()
    held = [asyncio.create_task(activator.admit(KEY)) for _ in range(3)]
    await wait_held(activator, 3)
    activator.drain()
    assert await activator.admit(KEY) == holding.DRAINING
    assert activator.held() == 3
    drained = asyncio.create_task(activator.drained())
    probe.ready = True
    activator.upsert(dataclasses.replace(AT_ZERO, ready_replicas=1))
    outcomes = await asyncio.wait_for(asyncio.gather(*held), 5)
    assert all(isinstance(o, holding.Released) for o in outcomes)
    await asyncio.wait_for(drained, 5)
    # A ready endpoint is still passed through while draining: forwarding costs no wait.
    assert await activator.admit(KEY) == queueing.Forward()


async def test_draining_still_re_holds_a_request_it_had_accepted() -> None:
    activator, _ = make()
    activator.drain()
    again = asyncio.create_task(activator.admit(KEY, arrived=activator.now()))
    await wait_held(activator, 1)
    activator.close()
    assert await again == holding.SHUTTING_DOWN


async def test_draining_with_nothing_held_is_drained_at_once() -> None:
    activator, _ = make()
    activator.drain()
    waiting = asyncio.ensure_future(activator.drained())
    await asyncio.sleep(0)  # one turn of the event loop, no time: nothing to wait for
    assert waiting.done()
    assert activator.held() == 0
