import pytest


@pytest.mark.gen_test
async def test_empty_job_list(api):
    status, body, headers = await api.get("/jobs/")
    assert status == 200
    assert body == {"count": 0, "next": None, "previous": None, "results": []}
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.gen_test
async def test_bad_status_is_a_plain_400(api):
    status, body, headers = await api.get("/jobs/?status=NOPE")
    assert status == 400
    assert headers["Content-Type"].startswith("text/plain")
    assert body == ("status 'NOPE' is not valid; choose from PENDING, BLOCKED, QUEUED, RUNNING, "
                    "FAILED, COMPLETED, CANCELED\n")
