"""Submitting a job from the dashboard (issue 14): a form made from the job type's interface,
sent to POST /queue/new-job/ with the page's session and XSRF token, file inputs chosen from
the stored files or uploaded on the spot (POST /files/), and the API's refusal shown next to
the field it names."""

import pytest

from tests.browser.browser_helpers import chromium
from tests.tokens import VIEWER_TOKEN

pytestmark = pytest.mark.alone

expect = pytest.importorskip("playwright.async_api").expect

INTERFACE = {"version": "1.0", "command": "wc", "command_arguments": "-w ${words} ${secs}",
             "input_data": [{"name": "secs", "type": "property", "required": True},
                            {"name": "note", "type": "property", "required": False},
                            {"name": "words", "type": "file", "media_types": ["text/plain"]}],
             "output_data": [{"name": "counts", "type": "file", "media_type": "text/plain"}]}


async def form_type(make):
    """A job type with two property inputs, a text file input and an output; a workspace with
    one text file in it. (job type, workspace, file)."""
    jt = await make.job_type("word-count", interface=INTERFACE, title="Count words")
    ws = await make.workspace("texts")
    text = await make.upload(ws["id"], "words.txt", b"one two three\n")
    return jt, ws, text


async def jobs(api) -> list[dict]:
    status, body, _ = await api.get("/jobs/")
    assert status == 200
    return body["results"]


@pytest.mark.gen_test(timeout=90)
async def test_a_valid_form_submits_the_job_and_opens_its_page(base_url, make, api):
    jt, ws, text = await form_type(make)
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/job-types/{jt['id']}")
        await page.get_by_role("link", name="Submit a job").click()
        await page.wait_for_url(f"{base_url}/dashboard/job-types/{jt['id']}/new-job")
        await page.get_by_label("secs (required)").fill("2")
        await page.get_by_label("note").fill("a note")
        await page.get_by_label("words (required)").select_option(
            label=f"words.txt (#{text['id']}, text/plain)")
        await expect(page.get_by_label("Output counts goes to")).to_have_value(str(ws["id"]))
        await page.get_by_role("button", name="Submit job").click()
        await page.wait_for_url(f"{base_url}/dashboard/jobs/*")
        job_id = int(page.url.rsplit("/", 1)[1])
        await expect(page.locator("h1 [data-status-badge]")).to_have_text("QUEUED")
    [row] = await jobs(api)
    assert row["id"] == job_id
    _, job, _ = await api.get(f"/jobs/{job_id}/")
    assert job["job_type"]["id"] == jt["id"] and job["status"] == "QUEUED"
    assert job["event"]["type"] == "USER"
    assert job["data"] == {"version": "1.0", "input_data": [
        {"name": "secs", "value": "2"}, {"name": "note", "value": "a note"},
        {"name": "words", "file_id": text["id"]}],
        "output_data": [{"name": "counts", "workspace_id": ws["id"]}]}


@pytest.mark.gen_test(timeout=90)
async def test_an_invalid_value_shows_the_api_message_at_its_field_and_keeps_the_form(
        base_url, make, api, artifacts):
    jt, _, text = await form_type(make)
    photo = f"photo.png (#{text['id'] + 1}, image/png)"
    form_url = f"{base_url}/dashboard/job-types/{jt['id']}/new-job"
    async with chromium(base_url) as page:
        await page.goto(form_url)
        secs = page.get_by_label("secs (required)")
        note = page.get_by_label("note")
        await note.fill("kept")
        await page.get_by_role("button", name="Submit job").click()
        error = page.locator('[data-input="secs"] [data-error]')
        await expect(error).to_have_text(
            'Invalid job data: input_data: required input "secs" is missing')
        await expect(secs).to_have_attribute("aria-invalid", "true")
        await expect(secs).to_be_focused()
        assert page.url == form_url
        await expect(note).to_have_value("kept")
        # A file of the wrong type, uploaded on the spot: the API names input_data[2].file_id,
        # the third entry sent, which is the words input.
        await secs.fill("3")
        await page.get_by_label("Upload a file for words").set_input_files(
            {"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n"})
        words = page.get_by_label("words (required)")
        await expect(words.locator("option:checked")).to_have_text([photo])
        await page.get_by_role("button", name="Submit job").click()
        await expect(page.locator('[data-input="words"] [data-error]')).to_have_text(
            f'Invalid job data: input_data[2].file_id: file {text["id"] + 1} has media type '
            '"image/png", expected one of ["text/plain"]')
        await expect(error).to_be_hidden()
        await expect(secs).not_to_have_attribute("aria-invalid", "true")
        await expect(words.locator("option:checked")).to_have_text([photo])
        assert page.url == form_url
        await page.set_viewport_size({"width": 360, "height": 740})
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(artifacts / "narrow-360-new-job-error.png"), full_page=True)
    assert await jobs(api) == []


@pytest.mark.gen_test(timeout=90)
async def test_a_file_uploaded_on_the_spot_is_the_jobs_input(base_url, make, api):
    jt, ws, text = await form_type(make)
    async with chromium(base_url) as page:
        await page.goto(f"{base_url}/dashboard/job-types/{jt['id']}/new-job")
        await expect(page.get_by_label("Uploads go to")).to_have_value(str(ws["id"]))
        await page.get_by_label("secs (required)").fill("1")
        await page.get_by_label("Upload a file for words").set_input_files(
            {"name": "fresh words.txt", "mimeType": "text/plain", "buffer": b"four five\n"})
        words = page.get_by_label("words (required)")
        uploaded_id = text["id"] + 1
        await expect(words.locator("option:checked")).to_have_text(
            [f"fresh words.txt (#{uploaded_id}, text/plain)"])
        await page.get_by_role("button", name="Submit job").click()
        await page.wait_for_url(f"{base_url}/dashboard/jobs/*")
        job_id = int(page.url.rsplit("/", 1)[1])
    status, stored, _ = await api.get(f"/files/{uploaded_id}/")
    assert status == 200
    assert (stored["file_name"], stored["media_type"], stored["file_size"],
            stored["workspace"]["id"]) == ("fresh words.txt", "text/plain", 10, ws["id"])
    _, job, _ = await api.get(f"/jobs/{job_id}/")
    assert job["data"]["input_data"] == [{"name": "secs", "value": "1"},
                                         {"name": "words", "file_id": uploaded_id}]


@pytest.mark.gen_test(timeout=90)
async def test_a_viewer_sees_the_apis_refusal_and_no_job_is_made(base_url, make, api):
    jt, _, text = await form_type(make)
    async with chromium(base_url, token=VIEWER_TOKEN) as page:
        await page.goto(f"{base_url}/dashboard/job-types/{jt['id']}/new-job")
        await page.get_by_label("secs (required)").fill("2")
        await page.get_by_label("words (required)").select_option(str(text["id"]))
        await page.get_by_role("button", name="Submit job").click()
        await expect(page.locator("[data-message]")).to_have_text(
            "This needs the operator role; you have the viewer role")
        await page.get_by_label("Upload a file for words").set_input_files(
            {"name": "more.txt", "mimeType": "text/plain", "buffer": b"six\n"})
        await expect(page.locator('[data-input="words"] [data-error]')).to_have_text(
            "This needs the operator role; you have the viewer role")
    assert await jobs(api) == []
    status, _, _ = await api.get(f"/files/{text['id'] + 1}/")
    assert status == 404
