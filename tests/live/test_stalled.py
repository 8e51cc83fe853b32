"""Limits: a subscriber that stops reading is closed with 1013 and never holds the others back;
one that sends an oversized message is closed with 1009; both leave the hub."""

import asyncio

import pytest

from tests.live_client import Subscriber, until_live

# Timing-sensitive (several processes, store kills or lag bounds): `make test` runs these after
# the parallel phase, one at a time, with nothing else running.
pytestmark = pytest.mark.alone

MAX_QUEUE = 2
MAX_CHANGES = 2000
MAX_MESSAGE = 1024


@pytest.fixture
def app_settings():
    return {"ws_max_queue": MAX_QUEUE, "ws_max_message_size": MAX_MESSAGE}


@pytest.mark.gen_test(timeout=120)
async def test_stalled_subscriber_is_closed_while_another_keeps_receiving(base_url, hub, make):
    # A long description makes every row about 256 KiB, so the socket buffers fill quickly.
    job_type = await make.job_type("live", category="live", description="x" * 262144)
    stalled = await Subscriber.connect(base_url)
    stalled._reader.cancel()  # stop reading: the client's one-message queue then blocks the socket
    healthy = await Subscriber.connect(base_url)
    await until_live(hub, 2)

    made = []
    while len(hub.subscribers) == 2 and len(made) < MAX_CHANGES:
        made.append(await make.submit(job_type))
        await healthy.until_row(made[-1]["id"], "QUEUED")
    assert len(hub.subscribers) == 1, f"still subscribed after {len(made)} changes"

    made.append(await make.submit(job_type))
    await healthy.until_row(made[-1]["id"], "QUEUED")
    assert [r["id"] for r in healthy.rows] == [job["id"] for job in made]

    received = []
    while (text := await stalled.connection.read_message()) is not None:
        received.append(text)
    assert stalled.connection.close_code == 1013
    assert stalled.connection.close_reason.startswith(
        f"Too far behind: more than {MAX_QUEUE} messages waiting; reconnect with started=")
    assert 0 < len(received) < len(made)
    healthy.close()


@pytest.mark.gen_test(timeout=30)
async def test_oversized_message_closes_the_subscriber_and_removes_it(http_client, base_url,
                                                                     hub):
    # (http_client is requested only so that pytest-tornado's server answers on this loop.)
    subscriber = await Subscriber.connect(base_url)
    await until_live(hub, 1)
    await subscriber.connection.write_message("x" * (MAX_MESSAGE + 1))
    await subscriber.closed.wait()
    assert subscriber.connection.close_code == 1009
    while hub.subscribers:
        await asyncio.sleep(0.01)
