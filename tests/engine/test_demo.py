"""`--demo`: its job types really run through the engine and write real products."""

import hashlib
import json
from pathlib import Path

import pytest

from engine.demo import JOB_TYPES, SCRIPTS, Demo
from tests.waiting import wait_job


async def product_text(store, job: dict) -> tuple[str, Path]:
    """The text of the job's one product and the input file it was made from."""
    [product] = await store.files.products_of_job(job["id"])
    workspace = (await store.files.workspaces_by_ids([product["workspace_id"]]))[
        product["workspace_id"]]
    [source_id] = job["input_file_ids"]
    source = (await store.files.files_by_ids([source_id]))[source_id]
    return (Path(workspace["base_path"], product["file_path"]).read_text(),
            Path(workspace["base_path"], source["file_path"]))


@pytest.mark.gen_test(timeout=120)
async def test_demo_jobs_run_and_write_products(store, start_engine, data_dir):
    engine = await start_engine()
    demo = Demo(store, engine, data_dir)
    await demo.setup()
    assert sorted(demo.job_types) == sorted(spec["name"] for spec in JOB_TYPES)
    ids = {name: t["id"] for name, t in demo.job_types.items()}
    again = Demo(store, engine, data_dir)
    await again.setup()  # a restarted demo keeps its job types and workspace
    assert {name: t["id"] for name, t in again.job_types.items()} == ids
    assert again.workspace["id"] == demo.workspace["id"]

    counted = await wait_job(store, (await demo.submit("demo-word-count"))["id"], "COMPLETED")
    text, source = await product_text(store, counted)
    words = source.read_text()
    assert json.loads(text) == {"file": source.name, "lines": words.count("\n"),
                                "words": len(words.split()), "characters": len(words)}

    summed = await wait_job(store, (await demo.submit("demo-sha256"))["id"], "COMPLETED")
    text, source = await product_text(store, summed)
    assert text == f"{hashlib.sha256(source.read_bytes()).hexdigest()}  {source.name}\n"
    assert demo.submitted == 2


def test_demo_jobs_do_not_read_the_checkout():
    """A sandboxed job sees neither /tmp nor folders only root may enter, and a checkout may be
    in either (a clean clone under /tmp failed every demo job): the scripts travel on the
    command line."""
    for spec in JOB_TYPES:
        assert str(SCRIPTS) not in json.dumps(spec), spec["name"]
        assert spec["interface"]["command_arguments"].startswith("-c ")
