"""The Prometheus HTTP API, one way for the whole operator: prometheus-api-client.

Thin adapter. Queries are synchronous (requests); async callers run them in a thread.
No retries inside the client: the caller's next tick or pass is the retry, and a
hanging query would stretch a tick for every endpoint. TLS is verified.
Every failure (connection, timeout, non-200, a body that is not a result) is one
exception type, QueryError, so callers decide in one place what "no answer" means.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import prometheus_api_client
import prometheus_api_client.exceptions
import requests
import urllib3

QUERY_TIMEOUT_S = 10.0
Rows = list[dict[str, Any]]  # the API's data.result: [{"metric": {...}, "value(s)": ...}]


class QueryError(Exception):
    """Prometheus gave no usable answer."""


class Client:
    """One Prometheus server, over an HTTP session this object owns (close() ends it)."""

    def __init__(self, url: str, timeout: float = QUERY_TIMEOUT_S) -> None:
        self._session = requests.Session()
        self._api = prometheus_api_client.PrometheusConnect(
            url=url.rstrip("/"),
            session=self._session,
            retry=urllib3.util.retry.Retry(total=0),
            timeout=timeout,
        )

    def close(self) -> None:
        self._session.close()

    def instant(self, query: str, at: float) -> Rows:
        """An instant query evaluated at `at` (Unix seconds)."""
        return self._ask(lambda: self._api.custom_query(query, params={"time": f"{at:.3f}"}))

    def range(self, query: str, start: float, end: float, step: float) -> Rows:
        """A range query from `start` to `end` (Unix seconds; the client sends whole
        seconds) every `step` seconds."""
        return self._ask(
            lambda: self._api.custom_query_range(query, _utc(start), _utc(end), step=f"{step:g}")
        )

    @staticmethod
    def _ask(call: Callable[[], Any]) -> Rows:
        try:
            rows = call()
        except (
            prometheus_api_client.exceptions.PrometheusApiClientException,
            requests.RequestException,
            ValueError,  # a body that is not JSON
            KeyError,  # JSON without data.result
            TypeError,
        ) as exc:
            raise QueryError(str(exc)) from exc
        if not isinstance(rows, list):
            raise QueryError(f"unexpected result: {rows!r:.200}")
        return rows


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
