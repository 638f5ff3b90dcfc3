"""The activator's held queues driven in-process (tideserve.activator.holding), for unit
tests: a scripted model-ready probe, and waits on the queues' state, never on time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tideserve.activator import holding, metrics, queueing


class Probe:
    """The model-ready probe: answers `ready`; counts calls; `asked` is set on each."""

    def __init__(self, ready: bool = False) -> None:
        self.ready = ready
        self.calls = 0
        self.asked = asyncio.Event()

    async def __call__(self, state: queueing.EndpointState) -> bool:
        self.calls += 1
        self.asked.set()
        return self.ready


def activator(
    state: queueing.EndpointState, ready: bool = False
) -> tuple[holding.Activator, Probe]:
    """An Activator that knows `state`'s endpoint, and its probe."""
    probe = Probe(ready)
    made = holding.Activator(probe, metrics.Metrics())
    made.replace([state], namespace=None)
    return made, probe


async def _until(check: Callable[[], object], what: str) -> None:
    # Each step (an admit, a probe) runs to its first await in one loop turn: yield until
    # the state shows it, with a bound, but no clock.
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never {what}")


async def wait_held(made: holding.Activator, key: queueing.EndpointKey, count: int) -> None:
    await _until(lambda: len(made.endpoints[key].queue) >= count, f"held {count} requests")


async def wait_model_ready(made: holding.Activator, key: queueing.EndpointKey) -> None:
    """The first probe runs as soon as a ready replica is listed."""
    await _until(lambda: made.endpoints[key].model_ready, "probed the model ready")
