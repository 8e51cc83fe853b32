"""GET /job-executions/{id}/logs/stdout/ and .../stderr/: each log whole, as raw text to
download, served as the file downloads are (attachment, CSP sandbox, nosniff)."""

import pytest

from handlers.engine_api import LOG_LIMIT


@pytest.mark.gen_test
async def test_each_log_downloads_whole_as_raw_text(api, make, store, tmp_path):
    jt = await make.posted_type("downloaded")
    job = await make.submit(jt)
    exe_id = job["job_exes"][0]["id"]
    status, body, _ = await api.get(f"/job-executions/{exe_id}/logs/stdout/")
    assert (status, body) == (200, "")  # not started: no log yet
    await store.jobs.start_execution(exe_id, None)
    stdout = "line <b>one</b>\n" + "x" * LOG_LIMIT + "\nlast ü\n"  # past the JSON view's limit
    (tmp_path / "out.log").write_text(stdout)
    (tmp_path / "err.log").write_text("warning: slow\n")
    await store.jobs.update_execution(exe_id, stdout_file=str(tmp_path / "out.log"),
                                      stderr_file=str(tmp_path / "err.log"))
    for stream, text in (("stdout", stdout), ("stderr", "warning: slow\n")):
        status, body, headers = await api.get(f"/job-executions/{exe_id}/logs/{stream}/")
        assert (status, body) == (200, text)
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert headers["Content-Disposition"] == \
            f'attachment; filename="execution-{exe_id}-{stream}.log"'
        assert headers["Content-Security-Policy"] == \
            "sandbox; default-src 'none'; frame-ancestors 'none'"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert int(headers["Content-Length"]) == len(text.encode())


@pytest.mark.gen_test
async def test_log_download_of_a_missing_execution_is_a_plain_404(api):
    status, body, headers = await api.get("/job-executions/999/logs/stderr/")
    assert status == 404 and headers["Content-Type"].startswith("text/plain")
    assert body.strip() == "Job execution 999 does not exist"
