"""/health (store ping) and /metrics (Prometheus): open to monitoring without credentials."""

import logging
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    generate_latest,
)

from handlers.base import BaseHandler

log = logging.getLogger("jobdeck")

REGISTRY = CollectorRegistry()
REQUEST_SECONDS = Histogram("jobdeck_request_seconds", "HTTP request latency",
                            ("handler", "method", "status"), registry=REGISTRY)


def record_request(handler) -> None:
    """Tornado's log_function: time every request by handler class and status."""
    REQUEST_SECONDS.labels(type(handler).__name__, handler.request.method,
                           str(handler.get_status())).observe(handler.request.request_time())


class HealthHandler(BaseHandler):
    """503 while the store does not answer within store_timeout_ms, and at once while the
    embedded store's process is down (its supervisor is restarting it)."""

    async def get(self):
        started = time.monotonic()
        embedded = self.settings.get("embedded_store")
        if embedded is not None and not embedded.is_alive():
            ok = False
            log.warning("health: the embedded %s store on port %s is down; it is being restarted",
                        embedded.name, embedded.port)
        else:
            ok = await self.store.ping()
            if not ok:
                log.warning("health: the job store does not answer ping")
        self.write_json({"status": "ok" if ok else "unavailable",
                         "store": {"reachable": ok,
                                   "ping_ms": round((time.monotonic() - started) * 1000, 2)}},
                        status=200 if ok else 503)


class MetricsHandler(BaseHandler):
    def get(self):
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(REGISTRY))
