"""presentation/: one declaration per response shape, from which the serializers and the OpenAPI
document are derived."""

import json

import pytest

from presentation import models as m
from presentation.openapi import document_text
from presentation.serializers import shape

ERROR = {"id": 7, "name": "disk-full", "title": "Disk full", "description": None,
         "category": "SYSTEM", "created": 1440784541005, "last_modified": 1440784541006,
         "is_builtin": False}


def test_shape_follows_the_model_and_formats_its_datetimes():
    body = shape(m.Error, ERROR)
    assert list(body) == list(m.Error.keys)
    assert body["created"] == "2015-08-28T17:55:41.005Z"
    assert body["last_modified"] == "2015-08-28T17:55:41.006Z"
    assert "is_builtin" not in body
    assert shape(m.Error, ERROR, title="Given") == {**body, "title": "Given"}


def test_shape_refuses_a_field_the_model_lacks_or_one_left_without_a_value():
    with pytest.raises(KeyError, match="no field colour"):
        shape(m.ErrorBase, ERROR, colour="red")
    with pytest.raises(KeyError, match="category"):
        shape(m.ErrorBase, {k: v for k, v in ERROR.items() if k != "category"})
    with pytest.raises(KeyError, match="name, title, description, category: no value given"):
        shape(m.ErrorBase, id=1)
    lenient = shape(m.NodeBase, {"id": 1, "hostname": "a"}, missing_ok=True)
    assert lenient == {"id": 1, "hostname": "a", "port": None, "slave_id": None}


def test_an_extended_model_keeps_its_base_order_and_appends_new_fields():
    assert m.JobDetails.keys[:len(m.Job.keys)] == m.Job.keys
    assert m.JobDetails.fields["job_type"] == {"$ref": "#/components/schemas/JobType"}
    assert m.JobExecutionDetails.added_to(m.JobExecutionBase)[0] == "environment"
    assert m.JobType.datetimes == {"created", "archived", "paused", "last_modified"}


def test_the_documents_schemas_are_the_models():
    schemas = json.loads(document_text())["components"]["schemas"]
    for model in m.COMPONENTS:
        assert schemas[model.name] == json.loads(json.dumps(model.schema())), model.name
        assert schemas[model.name]["required"] == list(model.keys)
    names = [model.name for model in m.COMPONENTS]
    assert len(names) == len(set(names))
