"""/health (store ping) and /metrics (Prometheus): open to monitoring without credentials."""

import asyncio
import logging
import time
import weakref

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from handlers.base import BaseHandler
from presentation.serializers import health, live_state

log = logging.getLogger("jobdeck")

REGISTRY = CollectorRegistry()
REQUEST_SECONDS = Histogram("jobdeck_request_seconds", "HTTP request latency",
                            ("handler", "method", "status"), registry=REGISTRY)


# The methods labelled by name; any other (a client may send any token) is counted as "other",
# so clients cannot add label sets. Handlers are labelled by class (one per route, and
# NotFoundHandler for every unknown path), never by the path requested.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str | None) -> str:
    return method if method in METHODS else "other"


def record_request(handler) -> None:
    """Tornado's log_function: time every request by handler class, method and status."""
    REQUEST_SECONDS.labels(type(handler).__name__, method_label(handler.request.method),
                           str(handler.get_status())).observe(handler.request.request_time())


class HealthHandler(BaseHandler):
    """503 while the store does not answer within store_timeout_ms, and at once while the
    embedded store's process is down (its supervisor is restarting it); 200 `degraded`, with
    the reason, while it answers but cannot write (a full disk)."""

    async def get(self):
        started = time.monotonic()
        embedded = self.settings.get("embedded_store")
        if embedded is not None and not embedded.is_alive():
            ok = False
            log.warning("health: the embedded %s store at %s is down; it is being restarted",
                        embedded.name, embedded.address)
        else:
            ok = await self.store.ping()
            if not ok:
                log.warning("health: the job store does not answer ping")
        ping_ms = round((time.monotonic() - started) * 1000, 2)
        # Reads (and ping) go on when the store cannot write, on a full disk: store/writes.py.
        problem = await self.store.writes.check() if ok else self.store.writes.problem
        feed = self.settings["hub"].feed
        live = live_state(feed)
        status = "ok" if ok else "unavailable"
        if ok and (live["lag_seconds"] > feed.stale_after or problem is not None):
            status = "degraded"
        engine = self.settings.get("engine")
        if ok and engine is not None and engine.draining:  # stopping: see drain_timeout
            status = "draining"
        self.write_json(health(status, ok, ping_ms, ok and problem is None, problem, live),
                        status=200 if ok else 503)


class FeedCollector:
    """This app's live feed figures, read at scrape time."""

    def __init__(self, feed):
        self.feed = feed

    def collect(self):
        yield GaugeMetricFamily("jobdeck_live_feed_lag_seconds",
                                "Seconds the live feed has been behind a change in the store",
                                value=self.feed.lag)
        yield GaugeMetricFamily("jobdeck_live_feed_max_lag_seconds",
                                "Longest the live feed has been behind the store",
                                value=self.feed.max_lag)
        yield CounterMetricFamily("jobdeck_live_feed_restarts",
                                  "Times the live feed restarted its change stream",
                                  value=self.feed.restarts)


class StoreWritesCollector:
    """Whether the store writes, as last seen (a scrape writes nothing: store/writes.py probes
    in the background while writes fail)."""

    def __init__(self, writes):
        self.writes = writes

    def collect(self):
        yield GaugeMetricFamily("jobdeck_store_writable",
                                "1 unless the store is failing writes (a full disk, read-only "
                                "data); /health names the problem",
                                value=0 if self.writes.problem is not None else 1)


class Snapshot:
    """Metric families already read (on the event loop), to render in a thread."""

    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return iter(self.families)


def render(snapshot: Snapshot) -> bytes:
    app_registry = CollectorRegistry()
    app_registry.register(snapshot)
    return generate_latest(REGISTRY) + generate_latest(app_registry)


# Per application: the render in progress, which scrapes arriving meanwhile share.
RENDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class MetricsHandler(BaseHandler):
    """The text is rendered in a thread, so a scrape never holds up the event loop, and
    concurrent scrapes share one render."""

    async def get(self):
        rendering = RENDERS.get(self.application)
        if rendering is None or rendering.done():
            # This app's figures are read here, on the loop; only the rendering is threaded.
            snapshot = Snapshot([*FeedCollector(self.settings["hub"].feed).collect(),
                                 *StoreWritesCollector(self.store.writes).collect()])
            rendering = asyncio.ensure_future(asyncio.to_thread(render, snapshot))
            RENDERS[self.application] = rendering
        body = await rendering
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(body)
