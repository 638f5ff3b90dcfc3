"""The metric path as a controller sees it: Triton -> Prometheus -> query, each one late.

Triton refreshes its metrics every `triton_interval_s` (2 s, its --metrics-interval-ms
default); Prometheus scrapes the latest refresh every `scrape_s`; a controller reads the
newest scrape at its own tick. So a signal is up to interval + scrape + tick old, as in
a cluster. Knative's queue-proxy bypasses Prometheus (1 s averages straight to the
autoscaler), which is why KPA gets its own `concurrency` series here.
"""

from __future__ import annotations

import collections
import dataclasses


@dataclasses.dataclass(frozen=True)
class Sample:
    """One scrape of the endpoint's Triton metrics, summed over replicas."""

    produced_at: float  # when Triton refreshed the values
    scraped_at: float
    pending: int  # nv_inference_pending_request_count
    success: int  # nv_inference_request_success (counter)
    queue_s: float  # nv_inference_queue_duration_us / 1e6 (counter)
    busy_s: float  # GPU busy seconds over replicas (what DCGM / nv_gpu_utilization show)
    ready: int = 1  # replicas exporting the model's series (0: no series at all)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    triton_interval_s: float = 2.0
    scrape_s: float = 5.0
    rate_window_s: float = 30.0
    concurrency_sample_s: float = 1.0


class Series:
    """The Prometheus side: scraped samples, and queue-proxy concurrency samples."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.samples: collections.deque[Sample] = collections.deque()
        self.concurrency: collections.deque[tuple[float, int]] = collections.deque()
        self._keep_s = max(config.rate_window_s, 120.0) + config.scrape_s

    def add_sample(self, sample: Sample) -> None:
        self.samples.append(sample)
        while self.samples and self.samples[0].scraped_at < sample.scraped_at - self._keep_s:
            self.samples.popleft()

    def add_concurrency(self, now: float, value: int) -> None:
        self.concurrency.append((now, value))
        while self.concurrency and self.concurrency[0][0] < now - 120.0:
            self.concurrency.popleft()

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def rates(self) -> tuple[float | None, float | None]:
        """(request rate /s, mean queue seconds per request) over the rate window.

        Like PromQL rate(): only samples of a live series count, and it takes two.
        """
        if len(self.samples) < 2 or not self.samples[-1].ready:
            return None, None
        last = self.samples[-1]
        first = last
        for s in reversed(self.samples):
            if not s.ready:
                break
            first = s
            if s.scraped_at <= last.scraped_at - self.config.rate_window_s:
                break
        if first is last:
            return None, None
        dt = last.produced_at - first.produced_at
        if dt <= 0:
            return None, None
        done = last.success - first.success
        rate = done / dt
        queue_time = (last.queue_s - first.queue_s) / done if done > 0 else None
        return rate, queue_time

    def busy_replicas(self) -> float | None:
        """Sum of GPU utilization over replicas (0..replicas) over the rate window."""
        if len(self.samples) < 2:
            return None
        last = self.samples[-1]
        first = last
        for s in reversed(self.samples):
            first = s
            if s.scraped_at <= last.scraped_at - self.config.rate_window_s:
                break
        dt = last.produced_at - first.produced_at
        return (last.busy_s - first.busy_s) / dt if dt > 0 else None

    def mean_concurrency(self, now: float, window_s: float) -> float:
        """Mean of the per-second concurrency samples over the window (Knative style)."""
        total, count = 0.0, 0
        for t, value in reversed(self.concurrency):
            if t <= now - window_s:
                break
            total += value
            count += 1
        return total / count if count else 0.0

    def max_concurrency(self, now: float, window_s: float) -> int:
        best = 0
        for t, value in reversed(self.concurrency):
            if t <= now - window_s:
                break
            best = max(best, value)
        return best


@dataclasses.dataclass(frozen=True)
class View:
    """What an autoscaler may know at one tick."""

    now: float
    current: int  # replicas asked for (the scale subresource)
    ready: int
    held: int  # activator / interceptor buffer, read fresh
    series: Series

    @property
    def pending(self) -> int | None:
        latest = self.series.latest()
        return None if latest is None else latest.pending
