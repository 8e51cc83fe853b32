"""Issue 11, serving: bounded /metrics labels and a scrape off the event loop (item 4), request
timeouts (item 12) and the Host check against DNS rebinding (item 13), against the real app on a
real port, with raw sockets where a well-behaved client would not do what an attacker does."""

import asyncio
import re
import socket
import threading
import time

import pytest

from core.settings import Settings
from handlers.health import REGISTRY
from http_server import AllowedHosts
from tests.live_client import Subscriber
from tests.tokens import OPERATOR_HEADERS

AUTHORIZATION = f"Authorization: {OPERATOR_HEADERS['Authorization']}\r\n"


async def exchange(port: int, data: bytes, timeout: float = 10) -> tuple[str, str]:
    """Send `data` on a new connection and read one response: (status line, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        answer = await asyncio.wait_for(read_response(reader), timeout)
    finally:
        writer.close()
    head, _, body = answer.decode().partition("\r\n\r\n")
    return head.split("\r\n")[0], body


async def seconds_until_closed(reader: asyncio.StreamReader, limit: float) -> float:
    """How long until the server closes the connection (it sends nothing more); fails after
    `limit` seconds."""
    started = time.monotonic()
    try:
        rest = await asyncio.wait_for(reader.read(), limit)
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {limit} s") from None
    assert rest == b""
    return time.monotonic() - started


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    return head + await reader.readexactly(length)


# -- item 4: /metrics ------------------------------------------------------------------------------

STANDARD = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
COUNT_LINE = re.compile(r'^jobdeck_request_seconds_count\{handler="([^"]*)",method="([^"]*)",'
                        r'status="([^"]*)"\} ([0-9.e+]+)$', re.MULTILINE)


def request_counts(text: str) -> dict[tuple[str, str, str], float]:
    return {match[:3]: float(match[3]) for match in COUNT_LINE.findall(text)}


@pytest.mark.gen_test
async def test_bogus_methods_and_paths_leave_metrics_labels_bounded(http_client, base_url):
    before = (await http_client.fetch(base_url + "/metrics")).body.decode()

    async def bogus(i: int) -> int:
        path = f"/nope-{i}/" if i % 2 else "/jobs/"
        response = await http_client.fetch(
            base_url + path, method=f"BOGUS{i}", headers=OPERATOR_HEADERS,
            allow_nonstandard_methods=True, raise_error=False)
        return response.code

    async def unknown(i: int) -> int:
        response = await http_client.fetch(base_url + f"/unknown-{i}/", headers=OPERATOR_HEADERS,
                                           raise_error=False)
        return response.code

    for start in range(0, 300, 50):
        codes = await asyncio.gather(*(bogus(i) for i in range(start, start + 50)))
        assert set(codes) == {405}
    assert set(await asyncio.gather(*(unknown(i) for i in range(50)))) == {404}
    after = (await http_client.fetch(base_url + "/metrics")).body.decode()

    counts, earlier = request_counts(after), request_counts(before)
    assert {method for _, method, _ in counts} <= STANDARD | {"other"}
    assert not re.search(r"BOGUS|nope-|unknown-", after)
    grown = {labels: n - earlier.get(labels, 0) for labels, n in counts.items()
             if n != earlier.get(labels, 0)}
    assert grown == {("NotFoundHandler", "other", "405"): 150,
                     ("JobsHandler", "other", "405"): 150,
                     ("NotFoundHandler", "GET", "404"): 50,
                     ("MetricsHandler", "GET", "200"): 1}
    # At most the three new label sets (a histogram's 15 buckets, sum, count, created each).
    assert len(after) - len(before) < 3 * 20 * 150


class BlockingCollector:
    """A collector whose collection waits until the test lets it go (or 10 s)."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()
        self.released: bool | None = None

    def describe(self):
        return []

    def collect(self):
        self.entered.set()
        self.released = self.release.wait(10)
        return iter(())


@pytest.mark.gen_test
async def test_a_slow_metrics_scrape_does_not_hold_up_health(http_client, base_url):
    blocking = BlockingCollector()
    REGISTRY.register(blocking)
    try:
        scrape = asyncio.ensure_future(http_client.fetch(base_url + "/metrics"))
        assert await asyncio.to_thread(blocking.entered.wait, 10)
        health = await http_client.fetch(base_url + "/health")
        blocking.release.set()
        assert health.code == 200
        assert (await scrape).code == 200
    finally:
        blocking.release.set()
        REGISTRY.unregister(blocking)
    assert blocking.released is True, "/health waited for the scrape to end"


# -- item 12: request timeouts ---------------------------------------------------------------------

# Tests take `app_settings` as an argument only for parametrize to set the app's settings.
TIMEOUTS = {"header_timeout": 1.0, "idle_timeout": 1.5, "body_timeout": 1.0}


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [TIMEOUTS])
async def test_partial_headers_are_cut_at_header_timeout(app_settings, http_server, http_port):
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        assert 0.5 < await seconds_until_closed(reader, 10) < 6
    finally:
        writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [TIMEOUTS])
async def test_headers_trickled_in_are_cut_at_header_timeout(app_settings, http_server, http_port):
    """A byte at a time keeps the connection busy, never idle: the limit is on the whole."""
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    started = time.monotonic()
    try:
        for byte in b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"x" * 100:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)
            if reader.at_eof() or writer.is_closing():
                break
            if time.monotonic() - started > 10:
                raise AssertionError("the connection was still open after 10 s")
        await seconds_until_closed(reader, 10)
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    assert 0.5 < time.monotonic() - started < 6


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [TIMEOUTS])
async def test_a_body_that_stops_arriving_is_cut_at_body_timeout(app_settings, http_server,
                                                                 http_port):
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    try:
        writer.write(f"POST /queue/new-job/ HTTP/1.1\r\nHost: localhost\r\n{AUTHORIZATION}"
                     "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                     '{"job_type_id": '.encode())
        assert 0.5 < await seconds_until_closed(reader, 10) < 6
    finally:
        writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [{**TIMEOUTS, "header_timeout": 10.0}])
async def test_an_idle_kept_alive_connection_is_closed_at_idle_timeout(app_settings, http_server,
                                                                       http_port):
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")
        assert 1.0 < await seconds_until_closed(reader, 12) < 6
    finally:
        writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [TIMEOUTS])
async def test_a_kept_alive_connection_serves_requests_and_cuts_partial_ones(
        app_settings, http_server, http_port):
    """Requests inside the idle timeout are served; a partial next request is cut within
    idle_timeout + header_timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    try:
        for _ in range(3):
            writer.write(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert (await read_response(reader)).startswith(b"HTTP/1.1 200 ")
            await asyncio.sleep(0.5)
        writer.write(b"GET /health HTTP/1.1\r\n")
        assert await seconds_until_closed(reader, 10) < 6
    finally:
        writer.close()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("app_settings", [TIMEOUTS])
async def test_live_websockets_outlive_the_idle_and_header_timeouts(app_settings, http_server,
                                                                    base_url, make):
    subscriber = await Subscriber.connect(base_url)
    await asyncio.sleep(3.5)
    assert not subscriber.closed.is_set()
    job = await make.pending(await make.job_type())
    await subscriber.until_row(job["id"], "PENDING")
    assert not subscriber.closed.is_set()
    subscriber.connection.close()


# -- item 13: Host ---------------------------------------------------------------------------------

REFUSED = "Host not allowed: 'evil.example' (add it to allowed_hosts to serve it)\n"
WS_UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [{}, {"auth": False}], ids=["auth", "no-auth"])
@pytest.mark.parametrize("path, extra", [
    ("/health", ""), ("/metrics", ""), ("/jobs/", AUTHORIZATION), ("/", AUTHORIZATION),
    ("/ws/jobs/updates/", AUTHORIZATION + WS_UPGRADE)],
    ids=["health", "metrics", "jobs", "dashboard", "websocket"])
async def test_a_foreign_host_is_refused_on_every_route(app_settings, http_server, http_port, path,
                                                        extra):
    for host in ("evil.example", f"evil.example:{http_port}", "EVIL.example."):
        status, body = await exchange(http_port, (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
        ).encode())
        assert (status, body) == ("HTTP/1.1 400 Bad Request", REFUSED), host


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [{}, {"auth": False}], ids=["auth", "no-auth"])
async def test_the_loopback_names_are_served(app_settings, http_server, http_port):
    for host in ("localhost", f"localhost:{http_port}", "127.0.0.1", f"127.0.0.1:{http_port}",
                 "[::1]", f"[::1]:{http_port}", "LocalHost."):
        status, _ = await exchange(http_port, (
            f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").encode())
        assert status == "HTTP/1.1 200 OK", host


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [{"auth": False}])
async def test_a_request_without_host_is_refused_in_http_1_1(app_settings, http_server, http_port):
    status, body = await exchange(http_port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert (status, body) == ("HTTP/1.1 400 Bad Request",
                              "Missing Host header (HTTP/1.1 requires one)\n")
    status, _ = await exchange(http_port, b"GET /health HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"


@pytest.mark.gen_test
@pytest.mark.parametrize("app_settings", [{"allowed_hosts": ("jobs.example.org",)}])
async def test_allowed_hosts_adds_names(app_settings, http_server, http_port):
    for host, expected in (("jobs.example.org", "200 OK"), ("Jobs.Example.Org:443", "200 OK"),
                           ("localhost", "200 OK"), ("evil.example", "400 Bad Request")):
        status, _ = await exchange(http_port, (
            f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").encode())
        assert status == f"HTTP/1.1 {expected}", host


def test_allowed_hosts_defaults_and_wildcards():
    default = AllowedHosts(Settings())
    assert [default.allows(h) for h in ("localhost", "127.0.0.1", "[::1]", "::1")] == [True] * 4
    assert [default.allows(h) for h in ("evil.example", "10.0.0.5", socket.gethostname(), "",
                                        "localhost.evil.example")] == [False] * 5
    assert AllowedHosts(Settings(host="10.0.0.5")).allows("10.0.0.5:8000")
    assert not AllowedHosts(Settings(host="10.0.0.5")).allows("10.0.0.6")
    everywhere = AllowedHosts(Settings(host="0.0.0.0"))
    assert everywhere.allows(socket.gethostname())
    assert everywhere.allows("10.1.2.3:8000") and everywhere.allows("[fe80::1]")
    assert not everywhere.allows("evil.example")
    assert AllowedHosts(Settings(host="::")).allows("192.168.1.20")
    anything = AllowedHosts(Settings(allowed_hosts=("*",)))
    assert anything.allows("evil.example") and anything.allows("whatever:1")
