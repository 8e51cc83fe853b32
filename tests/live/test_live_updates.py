"""ws://HOST/ws/jobs/updates/ against the real app and a real embedded store."""

import asyncio

import pytest
import tornado.websocket
from tornado.httpclient import HTTPClientError, HTTPRequest

from core.times import format_ms, now_ms
from tests.live_client import Subscriber, until_live, update_row, ws_url
from tests.tokens import OPERATOR_HEADERS


def change_key(job: dict) -> tuple[int, str]:
    """(id, last_status_change) of a store document (ms) or an API body (ISO text)."""
    changed = job["last_status_change"]
    return job["id"], changed if isinstance(changed, str) else format_ms(changed)


@pytest.mark.gen_test(timeout=30)
async def test_subscriber_sees_queued_running_completed_with_the_rest_payload(
        base_url, hub, make, api):
    job_type = await make.job_type("live", category="live")
    subscriber = await Subscriber.connect(base_url)
    await until_live(hub, 1)

    job = await make.submit(job_type)
    queued = await subscriber.until_row(job["id"], "QUEUED")
    assert queued == await update_row(api, job["id"])
    await make.start(job)
    running = await subscriber.until_row(job["id"], "RUNNING")
    await make.complete(job)
    completed = await subscriber.until_row(job["id"], "COMPLETED")

    assert completed == await update_row(api, job["id"])
    assert [r["status"] for r in subscriber.rows] == ["QUEUED", "RUNNING", "COMPLETED"]
    assert running["started"] == completed["started"] and running["ended"] is None
    assert queued["input_files"] == [] and queued["job_type"]["name"] == "live"
    for message in subscriber.messages:
        assert list(message) == ["count", "next", "previous", "results"]
        assert message["count"] == len(message["results"])
        assert message["next"] is None and message["previous"] is None
    subscriber.close()


@pytest.mark.gen_test(timeout=30)
async def test_filters_deliver_only_matching_jobs(base_url, hub, make):
    ingest = await make.job_type("ingest", category="intake")
    convert = await make.job_type("convert", category="processing")
    by_status = await Subscriber.connect(base_url, "status=COMPLETED&status=CANCELED")
    by_name = await Subscriber.connect(base_url, f"job_type_name=ingest&job_type_id={ingest['id']}")
    by_category = await Subscriber.connect(base_url, "job_type_category=processing")
    by_type_and_status = await Subscriber.connect(
        base_url, f"job_type_id={convert['id']}&status=RUNNING")
    await until_live(hub, 4)

    a = await make.submit(ingest)
    b = await make.submit(convert)
    await make.start(a)
    await make.start(b)
    await make.complete(a)
    await make.cancel(b)
    await by_status.until_row(b["id"], "CANCELED")
    await by_name.until_row(a["id"], "COMPLETED")
    await by_category.until_row(b["id"], "CANCELED")
    await by_type_and_status.until_row(b["id"], "RUNNING")
    # One more change each filter matches, so anything wrongly delivered before it has arrived.
    marker = await make.submit(convert)
    await make.start(marker)
    await make.cancel(marker)
    await by_status.until_row(marker["id"], "CANCELED")
    await by_category.until_row(marker["id"], "CANCELED")
    await by_type_and_status.until_row(marker["id"], "RUNNING")

    assert [(r["id"], r["status"]) for r in by_status.rows] == [
        (a["id"], "COMPLETED"), (b["id"], "CANCELED"), (marker["id"], "CANCELED")]
    assert [(r["id"], r["status"]) for r in by_name.rows] == [
        (a["id"], "QUEUED"), (a["id"], "RUNNING"), (a["id"], "COMPLETED")]
    assert [(r["id"], r["status"]) for r in by_category.rows] == [
        (b["id"], "QUEUED"), (b["id"], "RUNNING"), (b["id"], "CANCELED"),
        (marker["id"], "QUEUED"), (marker["id"], "RUNNING"), (marker["id"], "CANCELED")]
    assert [(r["id"], r["status"]) for r in by_type_and_status.rows] == [
        (b["id"], "RUNNING"), (marker["id"], "RUNNING")]
    for subscriber in (by_status, by_name, by_category, by_type_and_status):
        subscriber.close()


@pytest.mark.alone  # timing-sensitive: the catch-up races a steady stream of changes
@pytest.mark.gen_test(timeout=60)
async def test_catch_up_then_live_without_gap_or_duplicate_while_jobs_keep_changing(
        base_url, make, api, hub):
    job_type = await make.job_type("live", category="live")
    before = now_ms()
    history = [await make.submit(job_type) for _ in range(40)]
    for job in history[:20]:
        await make.start(job)
    # History in more than one catch-up batch: 2,500 more jobs written in bulk, stamped as if
    # they changed during the last hour (their status changes are not live, only catch-up).
    bulk = await make.bulk_jobs(job_type, [before - 3_600_000 + i for i in range(2500)],
                                event=history[0]["event"] | {
                                    "occurred": before, "rule": None, "rule_id": None})

    changing = asyncio.Event()
    changed = []

    async def keep_changing():
        """Cancel bulk jobs (moving them past the catch-up's position), start and complete
        history jobs and submit new ones, until told to stop."""
        step = 0
        while not changing.is_set() or step < 60:
            if step % 3 == 0:
                changed.append(await make.cancel(bulk[step * 7 % len(bulk)]))
            elif step % 3 == 1 and step // 3 < 20:
                changed.append(await make.complete(history[step // 3]))
            else:
                changed.append(await make.submit(job_type))
            step += 1
            await asyncio.sleep(0)

    changer = asyncio.create_task(keep_changing())
    await asyncio.sleep(0.05)
    started = format_ms(before - 3_600_000)
    subscriber = await Subscriber.connect(base_url, f"started={started}")
    await until_live(hub, 1)
    changing.set()
    await changer
    marker = await make.submit(job_type)
    await subscriber.until_row(marker["id"], "QUEUED")

    keys = subscriber.keys()
    assert len(keys) == len(set(keys)), "a status change was sent twice"
    assert len(subscriber.messages) >= 3 and all(
        m["count"] <= 1000 for m in subscriber.messages)
    last_seen = {}
    for row in subscriber.rows:
        assert row["last_status_change"] > last_seen.get(row["id"], ""), "out of order"
        last_seen[row["id"]] = row["last_status_change"]
    final = {row["id"]: row for row in subscriber.rows}
    status, body, _ = await api.get(f"/jobs/updates/?started={started}&page_size=1000")
    count = body["count"]
    expected = []
    for page in range(1, (count - 1) // 1000 + 2):
        status, body, _ = await api.get(
            f"/jobs/updates/?started={started}&page_size=1000&page={page}")
        assert status == 200
        expected.extend(body["results"])
    assert sorted(final) == sorted(row["id"] for row in expected)
    for row in expected:
        assert final[row["id"]] == row
    for job in changed:
        assert change_key(job) in set(keys)
    subscriber.close()


@pytest.mark.gen_test(timeout=30)
async def test_reconnect_after_forced_close_misses_nothing(base_url, hub, make):
    job_type = await make.job_type("live", category="live")
    first = await Subscriber.connect(base_url, f"started={format_ms(now_ms())}")
    await until_live(hub, 1)
    made = [await make.submit(job_type) for _ in range(5)]
    await first.until_row(made[-1]["id"], "QUEUED")

    (live,) = hub.subscribers
    hub.unsubscribe(live)
    live.on_overflow("forced by the test")
    await first.closed.wait()
    assert first.connection.close_code == 1013
    last = first.rows[-1]["last_status_change"]
    assert first.connection.close_reason == (
        f"Too far behind: forced by the test; reconnect with started={last}")

    made.append(await make.start(made[0]))
    made += [await make.submit(job_type) for _ in range(5)]
    made.append(await make.cancel(made[1]))
    second = await Subscriber.connect(base_url, f"started={last}")
    await until_live(hub, 1)
    made.append(await make.submit(job_type))
    await second.until_row(made[-1]["id"], "QUEUED")

    seen = set(first.keys()) | set(second.keys())
    assert {change_key(job) for job in made} <= seen
    assert len(second.keys()) == len(set(second.keys()))
    second.close()


BAD_QUERIES = ["status=NOPE", "job_id=seven", "job_type_id=1.5", "started=yesterday",
               "started=2015-08-28T17:55:41", "started=-PT1H"]


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("query", BAD_QUERIES)
async def test_bad_parameters_refuse_the_handshake_with_the_rest_message(query, base_url, api):
    rest_status, rest_body, _ = await api.get(f"/jobs/updates/?{query}")
    assert rest_status == 400
    with pytest.raises(HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(
            HTTPRequest(ws_url(base_url, query), headers=OPERATOR_HEADERS))
    assert refused.value.code == 400
    status, body, headers = await api.get(f"/ws/jobs/updates/?{query}", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert (status, body) == (400, rest_body)
    assert headers["Content-Type"].startswith("text/plain")


@pytest.mark.gen_test(timeout=30)
async def test_ended_is_refused_on_the_live_stream(base_url, api):
    with pytest.raises(HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(
            HTTPRequest(ws_url(base_url, "ended=PT1H"), headers=OPERATOR_HEADERS))
    assert refused.value.code == 400
    status, body, _ = await api.get("/ws/jobs/updates/?ended=PT1H")
    assert (status, body) == (400, "ended cannot be used on the live stream; leave it out\n")
