"""ws://HOST/ws/jobs/updates/: the /jobs/updates/ payload pushed as job statuses change.

Query parameters are those of GET /jobs/updates/ (parsed by the same function, job_filter in
presentation/filters.py, so a bad one is refused with the same 400 text) plus `started`: every
matching update since then is sent first, in batches of at most 1,000, then live batches follow
with no gap. Clients de-duplicate on `id` + `last_status_change` (a reconnect with `started` = the
last one seen repeats that boundary).
"""

import asyncio
import logging
from urllib.parse import urlparse

import tornado.websocket
from pymongo.errors import PyMongoError
from tornado.iostream import StreamClosedError

from live.hub import LiveFilter, Subscriber, page
from presentation import http
from presentation.errors import APIError, error_message, write_text_error
from presentation.filters import job_filter
from presentation.http import SecurityHeaders
from presentation.serializers import Serializer

log = logging.getLogger("jobdeck.live")

CATCH_UP_BATCH = 1000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_INTERNAL_ERROR = 1011
CLOSE_GOING_AWAY = 1001


class JobUpdatesSocket(SecurityHeaders, tornado.websocket.WebSocketHandler):
    """Before the handshake it answers as GET /jobs/updates/ does: the same credentials (viewer
    is enough), the same filter (presentation/filters.py) and the same text/plain refusals."""

    # Read by the Authenticator (auth/identity.py): credentials needed, and a 401 (no redirect).
    public = False
    login_redirect = False

    subscriber: Subscriber | None = None
    task: asyncio.Task | None = None

    async def prepare(self):
        await self.settings["authenticator"].authorize(self)  # before anything else
        self.filter = job_filter(self.get_query_arguments, "last_status_change")
        if self.filter.ended is not None:
            raise APIError(400, "ended cannot be used on the live stream; leave it out")

    def write_error(self, status_code: int, **kwargs) -> None:
        """A refused handshake: the API's one-line text/plain answer."""
        write_text_error(self, error_message(self, kwargs.get("exc_info", (None, None, None))[1]))

    @property
    def store(self):
        return self.settings["store"]

    @property
    def base_url(self) -> str:
        return http.base_url(self.request)

    def check_origin(self, origin: str) -> bool:
        """Browsers send Origin: only pages of this server may subscribe with its cookie.
        Clients without Origin (not browsers) are let through on their credentials alone."""
        parsed = urlparse(origin)
        return parsed.scheme in ("http", "https") and parsed.netloc.lower() == \
            self.request.host.lower()

    @property
    def config(self):
        """The server's core.settings.Settings (server.make_app)."""
        return self.settings["config"]

    @property
    def ping_interval(self) -> float:
        return self.config.ws_ping_interval

    @property
    def ping_timeout(self) -> float:
        return self.config.ws_ping_timeout

    @property
    def max_message_size(self) -> int:
        return self.config.ws_max_message_size

    def open(self):
        self.hub = self.settings["hub"]
        subscriber = self.subscriber = Subscriber(
            LiveFilter.from_job_filter(self.filter), self.base_url, self.send,
            self.on_overflow, self.config.ws_max_queue, on_stop=self.on_server_stop)
        self.task = asyncio.create_task(self.run(subscriber))

    def send(self, text: str):
        """Hand a message to the socket: a future done once it is written, None if closed."""
        try:
            return self.write_message(text)
        except tornado.websocket.WebSocketClosedError:
            return None

    def on_message(self, message):
        """Subscribers have nothing to say; messages are ignored."""

    async def run(self, subscriber: Subscriber) -> None:
        try:
            await self.hub.subscribe(subscriber)
            sent = await self.catch_up(subscriber) if self.filter.started is not None else {}
            if subscriber.closed:
                return
            subscriber.go_live(sent)
        except (tornado.websocket.WebSocketClosedError, StreamClosedError):
            pass
        except PyMongoError as exc:
            log.warning("live catch-up failed: %s", exc)
            self.close(CLOSE_INTERNAL_ERROR, self.resume_hint("the job store is unavailable"))

    async def catch_up(self, subscriber: Subscriber) -> dict[int, str]:
        """Every matching update since `started`, page by page; returns the last change sent
        per job so `go_live` drops what arrived meanwhile and was already sent."""
        sent: dict[int, str] = {}
        after = None
        serializer = None
        while not subscriber.closed:
            jobs = await self.store.jobs.updates_after(self.filter, after, CATCH_UP_BATCH)
            if not jobs or subscriber.closed:
                return sent
            serializer = serializer or Serializer(self.store, self.base_url)
            rows = await serializer.job_rows(jobs, input_files=True)
            await self.write_message(page(rows))
            for row in rows:
                sent[row["id"]] = max(sent.get(row["id"], ""), row["last_status_change"])
            subscriber.last_change = rows[-1]["last_status_change"]
            if len(jobs) < CATCH_UP_BATCH:
                return sent
            after = (jobs[-1]["last_status_change"], jobs[-1]["id"])
        return sent

    def resume_hint(self, why: str) -> str:
        last = self.subscriber.last_change if self.subscriber else None
        return f"{why}; reconnect with started={last}" if last else f"{why}; reconnect"

    def on_overflow(self, why: str) -> None:
        self.close(CLOSE_TRY_AGAIN_LATER, self.resume_hint(f"Too far behind: {why}"))

    def on_server_stop(self) -> None:
        self.close(CLOSE_GOING_AWAY, self.resume_hint("The server is stopping"))

    def on_close(self):
        """Unsubscribe, and let a catch-up still reading stop at its next page: cancelling it
        would close the store connection its read runs on, which other reads share."""
        if self.subscriber is not None:
            self.hub.unsubscribe(self.subscriber)
