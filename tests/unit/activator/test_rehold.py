"""A forward that reached no serving model (the replica went away between the ready check
and the forward) is held again, within the deadline of the request's first arrival."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc  # type: ignore[import-untyped]
import pytest
from tideserve_testbed import held

from tideserve.activator import grpc_passthrough, holding, queueing

pytestmark = pytest.mark.unit

KEY = queueing.EndpointKey("ml", "tiny")
READY = queueing.EndpointState(
    key=KEY, model="tiny", ready_replicas=1, max_held_requests=50, wake_deadline_seconds=30
)


def test_a_failed_forward_may_be_held_again_within_the_first_arrivals_deadline() -> None:
    assert queueing.may_rehold(reholds=0, arrived=100.0, now=129.9, deadline_seconds=30)
    assert not queueing.may_rehold(reholds=0, arrived=100.0, now=130.0, deadline_seconds=30)


def test_re_holds_are_bounded_even_with_time_left() -> None:
    limit = queueing.MAX_REHOLDS
    assert queueing.may_rehold(reholds=limit - 1, arrived=0.0, now=1.0, deadline_seconds=30)
    assert not queueing.may_rehold(reholds=limit, arrived=0.0, now=1.0, deadline_seconds=30)


def test_a_re_held_ticket_keeps_its_first_arrival_and_deadline() -> None:
    queue = queueing.HeldQueue()
    ticket = queue.admit(now=105.0, deadline_seconds=30, arrived=100.0)
    assert (ticket.arrived, ticket.deadline) == (100.0, 130.0)
    assert queue.oldest_age(now=106.0) == 6.0


@pytest.mark.parametrize(
    ("code", "held_again"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.NOT_FOUND, False),
        (grpc.StatusCode.INTERNAL, False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, False),
    ],
)
def test_only_grpc_unavailable_is_held_again(code: grpc.StatusCode, held_again: bool) -> None:
    # UNAVAILABLE: the channel could not connect, or Triton is unloading the model. Any
    # other code is the model's answer (or the client's deadline) and goes back as is.
    assert grpc_passthrough.rehold(code) is held_again


async def ready_activator(
    state: queueing.EndpointState = READY,
) -> tuple[holding.Activator, held.Probe]:
    activator, probe = held.activator(state, ready=True)
    await held.wait_model_ready(activator, KEY)
    return activator, probe


async def wait_held(activator: holding.Activator, count: int) -> None:
    await held.wait_held(activator, KEY, count)


async def test_upstream_failure_holds_the_request_until_the_model_is_ready_again() -> None:
    activator, probe = await ready_activator()
    arrived = activator.now()
    assert await activator.admit(KEY, arrived=arrived) == queueing.Forward()
    probe.ready = False  # the replica went away; the status still says ready
    assert activator.upstream_failed(KEY, arrived=arrived, reholds=0)
    again = asyncio.create_task(activator.admit(KEY, arrived=arrived))
    await wait_held(activator, 1)
    (ticket,) = activator.endpoints[KEY].queue
    assert ticket.deadline == arrived + READY.wake_deadline_seconds
    probe.ready = True  # a replica is back: the prober releases the re-held request
    outcome = await asyncio.wait_for(again, 10)
    assert isinstance(outcome, holding.Released)
    assert activator.endpoints[KEY].model_ready


async def test_a_re_held_request_is_refused_at_its_first_arrivals_deadline() -> None:
    state = dataclasses.replace(READY, wake_deadline_seconds=0.5)
    activator, probe = await ready_activator(state)
    arrived = activator.now() - 0.4  # it already spent most of its deadline
    probe.ready = False
    assert activator.upstream_failed(KEY, arrived=arrived, reholds=0)
    outcome = await asyncio.wait_for(activator.admit(KEY, arrived=arrived), 10)
    assert isinstance(outcome, queueing.Refusal)
    assert outcome.status == 503
    assert float(outcome.details["waitedSeconds"]) >= 0.4


async def test_no_re_hold_once_the_deadline_has_passed() -> None:
    activator, _ = await ready_activator()
    late = activator.now() - READY.wake_deadline_seconds
    assert not activator.upstream_failed(KEY, arrived=late, reholds=0)


async def test_no_re_hold_for_an_endpoint_that_is_gone() -> None:
    activator, _ = await ready_activator()
    activator.remove(KEY)
    assert not activator.upstream_failed(KEY, arrived=activator.now(), reholds=0)
