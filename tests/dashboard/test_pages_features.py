"""Issue 14's operator features as the handlers and the store serve them: the jobs page's
search (`q`) and its bounds, the filter the bulk actions send, and the new columns."""

import html
import json
import re

import pytest

from core.times import parse_instant
from store.search import SearchResult


def bulk_filter(body: str) -> dict:
    match = re.search(r'<div class="bulk" data-bulk data-bulk-count="\d+" data-filter="([^"]*)"',
                      body)
    assert match, "no filter on the bulk bar"
    return json.loads(html.unescape(match.group(1)))


T0 = 1_900_000_000_000


@pytest.mark.gen_test
async def test_search_text_longer_than_200_characters_is_a_field_error(api, make):
    status, body, _ = await api.get("/dashboard/jobs?q=" + "x" * 201)
    assert status == 400
    assert ('<p class="field-error" id="e-q" role="alert">Search text is 201 characters; '
            'at most 200.</p>') in body
    assert 'value="' + "x" * 201 + '"' in body


@pytest.mark.gen_test
async def test_search_resolves_names_titles_ids_inputs_and_errors(store, make):
    resample = await make.job_type("resample", title="Resample imagery")
    ingest = await make.job_type("ingest")
    r1 = (await make.queued(resample))[0]["id"]
    i1 = (await make.queued(ingest, {"input_data": [{"name": "a", "value": "Tile-XY"}]}))[0]["id"]
    i2 = (await make.failed(ingest, error_name="timeout"))[0]["id"]
    search = store.search
    assert await search.job_ids("imagery") == SearchResult([r1], False)
    assert await search.job_ids("INGEST") == SearchResult([i2, i1], False)
    assert await search.job_ids("tile-x") == SearchResult([i1], False)
    assert await search.job_ids("Timeout") == SearchResult([i2], False)
    assert await search.job_ids(str(r1)) == SearchResult([r1], False)
    assert await search.job_ids("   ") == SearchResult([], False)
    assert await search.job_ids(".*") == SearchResult([], False)  # text, not a pattern


@pytest.mark.gen_test
async def test_search_is_bounded_and_says_when_it_is_truncated(store, make):
    jt = await make.job_type("many")
    ids = [(await make.queued(jt, {"input_data": [{"name": "a", "value": "needle"}]}))[0]["id"]
           for _ in range(4)]
    # Type matches keep the newest `limit` jobs per type, and say more matched.
    assert await store.search.job_ids("many", limit=3) == SearchResult(ids[:0:-1], True)
    # Input values are compared on the newest `scan` jobs only.
    assert await store.search.job_ids("needle", scan=2) == SearchResult(ids[:1:-1], False)


@pytest.mark.gen_test
async def test_search_keeps_the_most_recently_modified_jobs_past_nine(store, make):
    """Ids of more digits are the newest: nx-27017 orders `_id` as text, so a search reading
    by `_id` descending kept jobs 9, 8, 7 of 12 and never found 10 to 12."""
    jt = await make.job_type("many")
    jobs = await make.bulk_jobs(jt, range(T0, T0 + 12_000, 1000),
                                {"input_data": [{"name": "a", "value": "needle"}]})
    newest = [job["id"] for job in jobs[::-1][:3]]
    assert await store.search.job_ids("many", limit=3) == SearchResult(newest, True)
    assert await store.search.job_ids("needle", scan=3) == SearchResult(newest, False)
    error = await store.errors.by_name("timeout")
    await store.db["jobs"].update_many({"job_type_id": jt["id"]},
                                       {"$set": {"status": "FAILED", "error_id": error["id"]}})
    assert await store.search.job_ids("timeout", limit=3) == SearchResult(newest, True)


@pytest.mark.gen_test
async def test_jobs_page_search_narrows_the_rows_and_the_bulk_filter(api, make):
    a = await make.job_type("alpha")
    b = await make.job_type("beta")
    a1 = (await make.queued(a))[0]["id"]
    await make.queued(b)
    status, body, _ = await api.get("/dashboard/jobs?q=alph&status=QUEUED")
    assert status == 200
    assert re.findall(r'<tr data-job-id="(\d+)"', body) == [str(a1)]
    assert bulk_filter(body) == {"status": ["QUEUED"], "job_ids": [a1]}
    assert 'value="alph" data-search' in body
    status, body, _ = await api.get("/dashboard/jobs?q=gamma")
    assert status == 200
    assert re.findall(r'<tr data-job-id="(\d+)"', body) == []
    assert "data-filter=" not in body


@pytest.mark.gen_test
async def test_bulk_filter_resolves_a_preset_range_to_instants(api, make):
    jt = await make.job_type("ranged")
    await make.queued(jt)
    status, body, _ = await api.get("/dashboard/jobs?started=PT1H&job_type_name=ranged")
    assert status == 200
    flt = bulk_filter(body)
    assert sorted(flt) == ["job_type_names", "started"]
    assert flt["job_type_names"] == ["ranged"]
    assert parse_instant(flt["started"]) > 0


@pytest.mark.gen_test
async def test_job_type_page_offers_requeue_all_failed_for_its_jobs(api, make):
    jt = await make.job_type("typed")
    status, body, _ = await api.get(f"/dashboard/job-types/{jt['id']}")
    assert status == 200
    assert (f'<button type="button" class="btn" data-requeue-failed data-filter="{{&#34;'
            f'job_type_ids&#34;: [{jt["id"]}]}}">Requeue all failed</button>') in body


@pytest.mark.gen_test
async def test_job_type_stats_window_must_be_one_of_the_choices(api, make):
    jt = await make.job_type("windowed")
    status, body, _ = await api.get(f"/dashboard/job-types/{jt['id']}?window=2h")
    assert status == 400
    assert "window must be one of 1h, 24h, 7d, not &#39;2h&#39;" in body
    status, body, _ = await api.get(f"/dashboard/job-types/{jt['id']}?window=7d")
    assert status == 200
    assert '<p class="subtle" data-stat="empty">No runs finished in the last 7 days.</p>' in body


@pytest.mark.gen_test(timeout=60)
async def test_a_truncated_search_says_so_and_its_bulk_filter_fits_a_get(api, make):
    jt = await make.job_type("plenty")
    docs = await make.bulk_jobs(jt, range(1_000_000, 1_000_000 + 501))
    status, body, _ = await api.get("/dashboard/jobs?q=plenty&page_size=1000")
    assert status == 200
    assert ("The search found more jobs than it shows: only the newest 500 matches are "
            "listed.") in body
    assert len(re.findall(r'<tr data-job-id="(\d+)"', body)) == 500
    flt = bulk_filter(body)
    assert list(flt) == ["job_ids"]
    assert sorted(flt["job_ids"]) == sorted(d["id"] for d in docs)[1:]
    # What static/js/bulk.js asks for "Requeue all failed" on this view.
    query = "&".join(f"job_id={i}" for i in flt["job_ids"])
    status, body, _ = await api.get(f"/jobs/?{query}&status=FAILED&page_size=1")
    assert (status, body["count"]) == (200, 0)
