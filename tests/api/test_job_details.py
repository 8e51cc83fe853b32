"""GET /jobs/{id}/: full nested forms, executions newest first, inputs and outputs merged."""

import pytest

from core.times import format_ms
from tests.responses import (
    ERROR_KEYS,
    EXE_BASE_KEYS,
    FILE_KEYS,
    JOB_DETAILS_KEYS,
    JOB_TYPE_KEYS,
    PRODUCT_KEYS,
    TIME_FORMAT,
    assert_plain_error,
)

INTERFACE = {
    "command": "footprint",
    "command_arguments": "${threshold} ${image} ${images} ${job_output_dir}",
    "input_data": [
        {"name": "threshold", "type": "property"},
        {"name": "image", "type": "file", "media_types": ["image/png"]},
        {"name": "images", "type": "files"},
        {"name": "note", "type": "property", "required": False},
    ],
    "output_data": [
        {"name": "footprint", "type": "file", "media_type": "application/vnd.google-earth.kml+xml"},
        {"name": "tiles", "type": "files"},
    ],
}


async def finished_job(make):
    """A job whose first try failed (SYSTEM error, so it was retried) and second completed with
    three products; its data uses every kind of input."""
    store = make.store
    job_type = await make.job_type("kml-footprint", "1.0.0", "footprints", interface=INTERFACE,
                                   title="KML Footprint")
    raw = await store.files.create_workspace("raw", "Raw Source", "/raw")
    products = await store.files.create_workspace("products", "Products", "/products")
    image = await store.files.create_file(raw["id"], "a.png", "image/png", 2048, "in/a.png")
    more = [await store.files.create_file(raw["id"], f"{n}.tif", "image/tiff", 10, f"in/{n}")
            for n in ("b", "c")]
    data = {"version": "1.0",
            "input_data": [{"name": "threshold", "value": "0.5"},
                           {"name": "image", "file_id": image["id"]},
                           {"name": "images", "file_ids": [more[1]["id"], more[0]["id"]]}],
            "output_data": [{"name": "footprint", "workspace_id": products["id"]},
                            {"name": "tiles", "workspace_id": products["id"]}]}
    inputs = [image["id"], more[0]["id"], more[1]["id"]]
    job, first = await make.running(job_type, data, input_file_ids=inputs)
    job = await store.jobs.fail_execution(first["id"], await store.errors.by_name("node-lost"))
    assert job["status"] == "QUEUED"
    second_id = job["latest_exe_id"]
    await store.jobs.start_execution(second_id, None)
    owner = {"job_type_id": job_type["id"], "job_id": job["id"], "job_exe_id": second_id}
    kml = await store.files.create_file(products["id"], "f.kml",
                                        "application/vnd.google-earth.kml+xml", 1234, "out/f.kml",
                                        product_of=owner)
    tiles = [await store.files.create_file(products["id"], f"t{n}.png", "image/png", 5,
                                           f"out/t{n}", product_of=owner) for n in (1, 2)]
    results = {"version": "1.0",
               "output_data": [{"name": "footprint", "file_id": kml["id"]},
                               {"name": "tiles", "file_ids": [t["id"] for t in tiles]}]}
    job = await store.jobs.complete_execution(second_id, results)
    return {"job_type": job_type, "job": job, "data": data, "results": results,
            "image": image, "more": more, "kml": kml, "tiles": tiles, "raw": raw,
            "products": products, "first": first["id"], "second": second_id}


@pytest.mark.gen_test
async def test_details_use_full_forms_and_add_the_extra_keys(api, make, base_url):
    made = await finished_job(make)
    job, job_type = made["job"], made["job_type"]
    status, body, headers = await api.get(f"/jobs/{job['id']}/")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert list(body) == JOB_DETAILS_KEYS
    assert body["id"] == job["id"] and body["status"] == "COMPLETED"
    assert body["num_exes"] == 2 and body["error"] is None
    assert list(body["job_type"]) == JOB_TYPE_KEYS
    assert body["job_type"]["name"] == "kml-footprint"
    assert body["job_type"]["title"] == "KML Footprint"
    assert body["job_type"]["revision_num"] == 1
    assert body["job_type"]["created"] == format_ms(job_type["created"])
    assert body["job_type_rev"] == {
        "id": job_type["job_type_rev_id"], "job_type": {"id": job_type["id"]},
        "revision_num": 1, "interface": job_type["interface"],
        "created": format_ms(job_type["created"])}
    event = await make.store.jobs.get_event(job["event"]["id"])
    assert body["event"] == {"id": event["id"], "type": "USER", "rule": None,
                             "occurred": format_ms(event["occurred"]),
                             "description": {"user": "Anonymous"}}
    assert body["data"] == made["data"]
    assert body["results"] == made["results"]
    assert body["recipes"] == []
    for key in ("created", "queued", "started", "ended", "last_status_change", "last_modified"):
        assert TIME_FORMAT.match(body[key]), key


@pytest.mark.gen_test
async def test_job_exes_are_newest_first(api, make):
    made = await finished_job(make)
    _, body, _ = await api.get(f"/jobs/{made['job']['id']}/")
    exes = body["job_exes"]
    assert [e["id"] for e in exes] == [made["second"], made["first"]]
    assert [e["status"] for e in exes] == ["COMPLETED", "FAILED"]
    assert all(list(e) == EXE_BASE_KEYS for e in exes)
    assert exes[0]["job"] == {"id": made["job"]["id"]} and exes[0]["error"] is None
    node_lost = await make.store.errors.by_name("node-lost")
    assert exes[1]["error"] == {"id": node_lost["id"]}
    assert [e["command_arguments"] for e in exes] == ["args", "args"]


@pytest.mark.gen_test
async def test_inputs_merge_property_file_and_files(api, make, base_url):
    made = await finished_job(make)
    _, body, _ = await api.get(f"/jobs/{made['job']['id']}/")
    inputs = body["inputs"]
    assert [(i["name"], i["type"]) for i in inputs] == [
        ("threshold", "property"), ("image", "file"), ("images", "files"), ("note", "property")]
    assert inputs[0]["value"] == "0.5"
    assert inputs[3]["value"] is None
    image = inputs[1]["value"]
    assert list(image) == FILE_KEYS
    assert image == {
        "id": made["image"]["id"], "workspace": {"id": made["raw"]["id"], "name": "raw"},
        "file_name": "a.png", "media_type": "image/png", "file_size": 2048, "data_type": [],
        "is_deleted": False, "uuid": made["image"]["uuid"],
        "url": f"{base_url}/files/{made['image']['id']}/download/",
        "created": format_ms(made["image"]["created"]), "deleted": None, "data_started": None,
        "data_ended": None, "geometry": None, "center_point": None, "meta_data": {},
        "countries": [], "last_modified": format_ms(made["image"]["last_modified"])}
    assert [f["id"] for f in inputs[2]["value"]] == [made["more"][1]["id"], made["more"][0]["id"]]
    assert [f["file_name"] for f in inputs[2]["value"]] == ["c.tif", "b.tif"]
    assert [f["id"] for f in body["input_files"]] == [made["image"]["id"], made["more"][0]["id"],
                                                      made["more"][1]["id"]]


@pytest.mark.gen_test
async def test_outputs_merge_file_and_files_as_products(api, make):
    made = await finished_job(make)
    _, body, _ = await api.get(f"/jobs/{made['job']['id']}/")
    outputs = body["outputs"]
    assert [(o["name"], o["type"]) for o in outputs] == [("footprint", "file"), ("tiles", "files")]
    kml = outputs[0]["value"]
    assert list(kml) == PRODUCT_KEYS
    assert kml["id"] == made["kml"]["id"] and kml["file_name"] == "f.kml"
    assert kml["workspace"] == {"id": made["products"]["id"], "name": "products"}
    assert kml["is_operational"] is True and kml["is_published"] is True
    assert kml["published"] == format_ms(made["kml"]["published"]) and kml["unpublished"] is None
    assert kml["job_type"] == {"id": made["job_type"]["id"]}
    assert kml["job"] == {"id": made["job"]["id"]}
    assert kml["job_exe"] == {"id": made["second"]}
    assert [t["id"] for t in outputs[1]["value"]] == [t["id"] for t in made["tiles"]]
    assert [p["id"] for p in body["products"]] == [made["kml"]["id"]] + [
        t["id"] for t in made["tiles"]]


@pytest.mark.gen_test
async def test_unfinished_job_has_null_outputs(api, make):
    made_type = await make.job_type(interface=INTERFACE)
    job = await make.pending(made_type)
    _, body, _ = await api.get(f"/jobs/{job['id']}/")
    assert body["results"] is None and body["job_exes"] == []
    assert body["outputs"] == [{"name": "footprint", "type": "file", "value": None},
                               {"name": "tiles", "type": "files", "value": []}]


@pytest.mark.gen_test
async def test_failed_job_details_carry_the_full_error(api, make):
    job, _ = await make.failed(await make.job_type())
    error = await make.store.errors.by_name("algorithm-unknown")
    _, body, _ = await api.get(f"/jobs/{job['id']}/")
    assert list(body["error"]) == ERROR_KEYS
    assert body["error"]["id"] == error["id"]
    assert body["error"]["created"] == format_ms(error["created"])


@pytest.mark.gen_test
async def test_unknown_job_is_a_plain_404(api):
    status, body, headers = await api.get("/jobs/4242/")
    assert_plain_error(status, body, headers, 404, "Job 4242 does not exist")
    status, body, headers = await api.get("/jobs/999999999999999999/")
    assert_plain_error(status, body, headers, 404, "does not exist")
    status, body, headers = await api.get("/jobs/abc/")
    assert_plain_error(status, body, headers, 404)
    status, body, headers = await api.get("/jobs/99999999999999999999/")
    assert_plain_error(status, body, headers, 404)
