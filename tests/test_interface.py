"""Tests for core.interface: job interfaces, error mappings, job data and merged inputs/outputs."""

import copy

import pytest
from jsonschema import Draft202012Validator

from core.interface import (
    ERROR_MAPPING_SCHEMA,
    INTERFACE_SCHEMA,
    JOB_DATA_SCHEMA,
    InvalidErrorMapping,
    InvalidInterface,
    InvalidJobData,
    command_argument_names,
    merge_inputs,
    merge_outputs,
    referenced_file_ids,
    referenced_workspace_ids,
    validate_error_mapping,
    validate_interface,
    validate_job_data,
)

KNOWN_ERRORS = {"unknown", "timeout", "algorithm-unknown"}

TEXT_FILE = {"id": 2, "file_name": "input_file.txt", "media_type": "text/plain"}
PNG_FILE = {"id": 3, "file_name": "a.png", "media_type": "image/png"}
OTHER_PNG = {"id": 4, "file_name": "b.png", "media_type": "image/png"}
FILES = {2: TEXT_FILE, 3: PNG_FILE, 4: OTHER_PNG}


def make_interface(**changes):
    """A valid interface using every input type, with the given keys replaced."""
    interface = {
        "version": "1.0",
        "command": "python make_geotiff.py",
        "command_arguments": "${image} ${extras} -m ${mode} ${job_output_dir}",
        "input_data": [
            {"name": "image", "type": "file", "media_types": ["image/png"]},
            {"name": "extras", "type": "files", "required": False},
            {"name": "mode", "type": "property"},
        ],
        "output_data": [
            {"name": "geotiff", "type": "file", "media_type": "image/tiff"},
            {"name": "logs", "type": "files", "required": False},
        ],
    }
    interface.update(changes)
    return interface


def make_data(**changes):
    """Valid job data for make_interface(), with the given keys replaced."""
    data = {
        "version": "1.0",
        "input_data": [
            {"name": "image", "file_id": 3},
            {"name": "extras", "file_ids": [2, 4]},
            {"name": "mode", "value": "fast"},
        ],
        "output_data": [
            {"name": "geotiff", "workspace_id": 1},
            {"name": "logs", "workspace_id": 2},
        ],
    }
    data.update(changes)
    return data


INTERFACE = validate_interface(make_interface())


def interface_error(interface):
    with pytest.raises(InvalidInterface) as info:
        validate_interface(interface)
    return str(info.value)


def data_error(data, files=FILES, interface=INTERFACE):
    with pytest.raises(InvalidJobData) as info:
        validate_job_data(interface, data, files)
    return str(info.value)


@pytest.mark.parametrize(
    "schema", [INTERFACE_SCHEMA, ERROR_MAPPING_SCHEMA, JOB_DATA_SCHEMA]
)
def test_schemas_are_valid_draft_2020_12(schema):
    Draft202012Validator.check_schema(schema)


# --- interfaces -------------------------------------------------------------------------------


def test_validate_interface_fills_defaults():
    result = validate_interface(
        {
            "command": "run.sh",
            "command_arguments": "${input_file} ${job_output_dir}",
            "input_data": [{"name": "input_file", "type": "file"}],
            "output_data": [
                {"name": "out", "type": "file", "media_type": "text/plain"}
            ],
            "shared_resources": [{"name": "db", "type": "db"}],
        }
    )
    assert result == {
        "version": "1.0",
        "command": "run.sh",
        "command_arguments": "${input_file} ${job_output_dir}",
        "input_data": [
            {"name": "input_file", "type": "file", "required": True, "media_types": []}
        ],
        "output_data": [
            {
                "name": "out",
                "type": "file",
                "media_type": "text/plain",
                "required": True,
            }
        ],
        "shared_resources": [{"name": "db", "type": "db", "required": True}],
    }


def test_validate_interface_minimal_gets_empty_lists():
    result = validate_interface({"command": "true", "command_arguments": ""})
    assert result == {
        "version": "1.0",
        "command": "true",
        "command_arguments": "",
        "input_data": [],
        "output_data": [],
        "shared_resources": [],
    }


def test_validate_interface_keeps_explicit_values_and_does_not_mutate():
    interface = make_interface()
    original = copy.deepcopy(interface)
    result = validate_interface(interface)
    assert interface == original
    assert result["input_data"][1] == {
        "name": "extras",
        "type": "files",
        "required": False,
        "media_types": [],
    }
    assert result["input_data"][2] == {
        "name": "mode",
        "type": "property",
        "required": True,
    }
    assert result["output_data"][1]["required"] is False


def test_validate_interface_result_is_independent_copy():
    interface = make_interface()
    result = validate_interface(interface)
    result["input_data"][0]["media_types"].append("x")
    assert interface["input_data"][0]["media_types"] == ["image/png"]


@pytest.mark.parametrize(
    ("interface", "message"),
    [
        ([], "[] is not of type 'object'"),
        ({"command_arguments": ""}, "'command' is a required property"),
        ({"command": "x"}, "'command_arguments' is a required property"),
        (make_interface(command=""), "command: '' should be non-empty"),
        (make_interface(command=5), "command: 5 is not of type 'string'"),
        (
            make_interface(command_arguments=None),
            "command_arguments: None is not of type 'string'",
        ),
        (make_interface(version="2.0"), "version: '1.0' was expected"),
        (
            make_interface(extra=1),
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
        (
            make_interface(
                input_data=[
                    {"name": "a", "type": "file"},
                    {"name": "b", "type": "blob"},
                ]
            ),
            "input_data[1].type: 'blob' is not one of ['property', 'file', 'files']",
        ),
        (
            make_interface(input_data=[{"name": "bad name", "type": "file"}]),
            "input_data[0].name: 'bad name' does not match '^[a-zA-Z0-9_-]+$'",
        ),
        (
            make_interface(input_data=[{"name": "", "type": "file"}]),
            "input_data[0].name: '' does not match '^[a-zA-Z0-9_-]+$'",
        ),
        (
            make_interface(input_data=[{"type": "file"}]),
            "input_data[0]: 'name' is a required property",
        ),
        (
            make_interface(
                input_data=[{"name": "a", "type": "file", "required": "yes"}]
            ),
            "input_data[0].required: 'yes' is not of type 'boolean'",
        ),
        (
            make_interface(
                input_data=[{"name": "a", "type": "file", "media_types": [1]}]
            ),
            "input_data[0].media_types[0]: 1 is not of type 'string'",
        ),
        (
            make_interface(input_data=[{"name": "a", "type": "file", "color": "red"}]),
            "input_data[0]: Additional properties are not allowed ('color' was unexpected)",
        ),
        (
            make_interface(output_data=[{"name": "a", "type": "property"}]),
            "output_data[0].type: 'property' is not one of ['file', 'files']",
        ),
        (
            make_interface(
                output_data=[{"name": "a", "type": "file", "media_type": 3}]
            ),
            "output_data[0].media_type: 3 is not of type 'string'",
        ),
        (
            make_interface(shared_resources=[{"name": "db"}]),
            "shared_resources[0]: 'type' is a required property",
        ),
        (make_interface(input_data={}), "input_data: {} is not of type 'array'"),
    ],
)
def test_validate_interface_schema_errors(interface, message):
    assert interface_error(interface) == message


def test_validate_interface_rejects_duplicate_input_names():
    interface = make_interface(
        command_arguments="",
        input_data=[{"name": "a", "type": "file"}, {"name": "a", "type": "property"}],
        output_data=[],
    )
    assert interface_error(interface) == 'input_data[1].name: duplicate name "a"'


def test_validate_interface_rejects_output_named_like_input():
    interface = make_interface(output_data=[{"name": "mode", "type": "file"}])
    assert interface_error(interface) == 'output_data[0].name: duplicate name "mode"'


def test_validate_interface_rejects_media_types_on_property():
    interface = make_interface(
        command_arguments="",
        input_data=[{"name": "p", "type": "property", "media_types": ["text/plain"]}],
    )
    assert (
        interface_error(interface)
        == "input_data[0].media_types: only file and files inputs take media_types"
    )


def test_validate_interface_rejects_unknown_placeholder():
    interface = make_interface(
        command_arguments="${image} ${geotiff} ${job_output_dir}"
    )
    assert (
        interface_error(interface)
        == 'command_arguments: unknown placeholder "${geotiff}"'
    )


def test_validate_interface_rejects_empty_placeholder():
    interface = make_interface(command_arguments="${}")
    assert interface_error(interface) == 'command_arguments: unknown placeholder "${}"'


def test_command_argument_names_in_order_without_repeats():
    interface = make_interface(
        command_arguments="${mode} ${image} -x ${mode} $HOME ${job_output_dir}"
    )
    assert command_argument_names(interface) == ["mode", "image", "job_output_dir"]


def test_command_argument_names_empty():
    assert command_argument_names({"command_arguments": "--help"}) == []


# --- error mappings ---------------------------------------------------------------------------


def test_validate_error_mapping_fills_defaults():
    assert validate_error_mapping({}, KNOWN_ERRORS) == {
        "version": "1.0",
        "exit_codes": {},
    }


def test_validate_error_mapping_returns_copy():
    mapping = {
        "version": "1.0",
        "exit_codes": {"1": "timeout", "-1": "unknown", "0": "unknown"},
    }
    result = validate_error_mapping(mapping, KNOWN_ERRORS)
    assert result == mapping
    result["exit_codes"]["2"] = "unknown"
    assert "2" not in mapping["exit_codes"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("x", "'x' is not of type 'object'"),
        ({"version": "1.1"}, "version: '1.0' was expected"),
        (
            {"codes": {}},
            "Additional properties are not allowed ('codes' was unexpected)",
        ),
        ({"exit_codes": []}, "exit_codes: [] is not of type 'object'"),
        (
            {"exit_codes": {"one": "timeout"}},
            "exit_codes: 'one' does not match '^(0|-?[1-9][0-9]*)$'",
        ),
        (
            {"exit_codes": {"01": "timeout"}},
            "exit_codes: '01' does not match '^(0|-?[1-9][0-9]*)$'",
        ),
        ({"exit_codes": {"1": 5}}, "exit_codes[\"1\"]: 5 is not of type 'string'"),
        (
            {"exit_codes": {"1": "timeout", "2": "bogus"}},
            'exit_codes["2"]: unknown error "bogus"',
        ),
    ],
)
def test_validate_error_mapping_errors(mapping, message):
    with pytest.raises(InvalidErrorMapping) as info:
        validate_error_mapping(mapping, KNOWN_ERRORS)
    assert str(info.value) == message


def test_exceptions_are_value_errors():
    assert issubclass(InvalidInterface, ValueError)
    assert issubclass(InvalidErrorMapping, ValueError)
    assert issubclass(InvalidJobData, ValueError)


# --- job data ---------------------------------------------------------------------------------


def test_validate_job_data_returns_copy():
    data = make_data()
    result = validate_job_data(INTERFACE, data, FILES)
    assert result == data
    assert result is not data
    result["input_data"].pop()
    assert len(data["input_data"]) == 3


def test_validate_job_data_fills_defaults_and_allows_optional_inputs_missing():
    interface = validate_interface(
        make_interface(
            command_arguments="",
            input_data=[{"name": "mode", "type": "property", "required": False}],
            output_data=[],
        )
    )
    assert validate_job_data(interface, {}, {}) == {
        "version": "1.0",
        "input_data": [],
        "output_data": [],
    }


def test_validate_job_data_accepts_any_media_type_when_list_empty():
    data = make_data(
        input_data=[
            {"name": "image", "file_id": 3},
            {"name": "mode", "value": "x"},
            {"name": "extras", "file_ids": [2]},
        ]
    )
    assert validate_job_data(INTERFACE, data, FILES)["input_data"][2] == {
        "name": "extras",
        "file_ids": [2],
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("x", "'x' is not of type 'object'"),
        (make_data(version="2"), "version: '1.0' was expected"),
        (
            make_data(extra=1),
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
        (make_data(input_data={}), "input_data: {} is not of type 'array'"),
        (
            make_data(input_data=[{"file_id": 3}]),
            "input_data[0]: 'name' is a required property",
        ),
        (
            make_data(input_data=[{"name": "image", "file_id": "3"}]),
            "input_data[0].file_id: '3' is not of type 'integer'",
        ),
        (
            make_data(input_data=[{"name": "image", "file_id": 3.0}]),
            "input_data[0].file_id: 3.0 is not of type 'integer'",
        ),
        (
            make_data(input_data=[{"name": "image", "file_id": True}]),
            "input_data[0].file_id: True is not of type 'integer'",
        ),
        (
            make_data(input_data=[{"name": "extras", "file_ids": []}]),
            "input_data[0].file_ids: [] should be non-empty",
        ),
        (
            make_data(input_data=[{"name": "extras", "file_ids": [2, 2]}]),
            "input_data[0].file_ids: [2, 2] has non-unique elements",
        ),
        (
            make_data(input_data=[{"name": "extras", "file_ids": [2, "4"]}]),
            "input_data[0].file_ids[1]: '4' is not of type 'integer'",
        ),
        (
            make_data(input_data=[{"name": "mode", "value": 7}]),
            "input_data[0].value: 7 is not of type 'string'",
        ),
        (
            make_data(input_data=[{"name": "mode", "val": "x"}]),
            "input_data[0]: Additional properties are not allowed ('val' was unexpected)",
        ),
        (
            make_data(output_data=[{"name": "geotiff"}]),
            "output_data[0]: 'workspace_id' is a required property",
        ),
        (
            make_data(output_data=[{"name": "geotiff", "workspace_id": "1"}]),
            "output_data[0].workspace_id: '1' is not of type 'integer'",
        ),
    ],
)
def test_validate_job_data_schema_errors(data, message):
    assert data_error(data) == message


def test_validate_job_data_unknown_input():
    data = make_data()
    data["input_data"].append({"name": "colour", "value": "red"})
    assert data_error(data) == 'input_data[3]: unknown input "colour"'


def test_validate_job_data_duplicate_input():
    data = make_data()
    data["input_data"].append({"name": "mode", "value": "slow"})
    assert data_error(data) == 'input_data[3]: duplicate input "mode"'


def test_validate_job_data_required_input_missing():
    data = make_data(input_data=[{"name": "mode", "value": "fast"}])
    assert data_error(data) == 'input_data: required input "image" is missing'


def test_validate_job_data_required_input_missing_from_empty_data():
    interface = validate_interface(
        {
            "command": "run",
            "command_arguments": "${input_file}",
            "input_data": [{"name": "input_file", "type": "file"}],
        }
    )
    assert (
        data_error({}, interface=interface)
        == 'input_data: required input "input_file" is missing'
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "mode"}, 'input_data[0]: property input "mode" needs "value"'),
        (
            {"name": "mode", "value": "x", "file_id": 3},
            'input_data[0]: property input "mode" does not take "file_id"',
        ),
        ({"name": "image"}, 'input_data[0]: file input "image" needs "file_id"'),
        (
            {"name": "image", "file_ids": [3]},
            'input_data[0]: file input "image" does not take "file_ids"',
        ),
        (
            {"name": "extras", "file_id": 2},
            'input_data[0]: files input "extras" does not take "file_id"',
        ),
        ({"name": "extras"}, 'input_data[0]: files input "extras" needs "file_ids"'),
    ],
)
def test_validate_job_data_value_key_must_match_input_type(entry, message):
    assert data_error(make_data(input_data=[entry])) == message


def test_validate_job_data_missing_file():
    data = make_data()
    data["input_data"][0]["file_id"] = 99
    assert data_error(data) == "input_data[0].file_id: file 99 does not exist"


def test_validate_job_data_missing_file_in_list():
    data = make_data()
    data["input_data"][1]["file_ids"] = [2, 98]
    assert data_error(data) == "input_data[1].file_ids[1]: file 98 does not exist"


def test_validate_job_data_wrong_media_type():
    data = make_data()
    data["input_data"][0]["file_id"] = 2
    assert data_error(data) == (
        'input_data[0].file_id: file 2 has media type "text/plain", expected one of ["image/png"]'
    )


def test_validate_job_data_wrong_media_type_in_list():
    interface = validate_interface(
        make_interface(
            input_data=[
                {"name": "image", "type": "file"},
                {
                    "name": "extras",
                    "type": "files",
                    "media_types": ["image/png", "image/jpeg"],
                },
                {"name": "mode", "type": "property"},
            ]
        )
    )
    data = make_data()
    data["input_data"][1]["file_ids"] = [3, 2]
    assert data_error(data, interface=interface) == (
        'input_data[1].file_ids[1]: file 2 has media type "text/plain", '
        'expected one of ["image/png", "image/jpeg"]'
    )


def test_validate_job_data_missing_output():
    data = make_data(output_data=[{"name": "geotiff", "workspace_id": 1}])
    assert data_error(data) == 'output_data: output "logs" is missing'


def test_validate_job_data_unknown_output():
    data = make_data()
    data["output_data"].append({"name": "extra", "workspace_id": 1})
    assert data_error(data) == 'output_data[2]: unknown output "extra"'


def test_validate_job_data_duplicate_output():
    data = make_data()
    data["output_data"].append({"name": "logs", "workspace_id": 3})
    assert data_error(data) == 'output_data[2]: duplicate output "logs"'


# --- referenced ids ---------------------------------------------------------------------------


def test_referenced_ids():
    assert referenced_file_ids(make_data()) == {2, 3, 4}
    assert referenced_workspace_ids(make_data()) == {1, 2}


@pytest.mark.parametrize(
    "data",
    [
        None,
        "x",
        [],
        {},
        {"input_data": "x", "output_data": 5},
        {"input_data": [None, 1, "x"]},
    ],
)
def test_referenced_ids_ignore_malformed_data(data):
    assert referenced_file_ids(data) == set()
    assert referenced_workspace_ids(data) == set()


def test_referenced_ids_skip_malformed_entries():
    data = {
        "input_data": [
            {"name": "a", "file_id": "7"},
            {"name": "b", "file_id": True},
            {"name": "c", "file_ids": "8"},
            {"name": "d", "file_ids": [9, None, 1.0, [10]]},
            {"name": "e", "file_id": 11},
            "junk",
        ],
        "output_data": [{"workspace_id": "1"}, {"workspace_id": 5}, {"name": "x"}, 7],
    }
    assert referenced_file_ids(data) == {9, 11}
    assert referenced_workspace_ids(data) == {5}


# --- merged inputs and outputs ----------------------------------------------------------------


def test_merge_inputs_in_interface_order():
    data = make_data(
        input_data=[
            {"name": "mode", "value": "fast"},
            {"name": "extras", "file_ids": [4, 2]},
            {"name": "image", "file_id": 3},
        ]
    )
    assert merge_inputs(INTERFACE, data, FILES) == [
        {"name": "image", "type": "file", "value": PNG_FILE},
        {"name": "extras", "type": "files", "value": [OTHER_PNG, TEXT_FILE]},
        {"name": "mode", "type": "property", "value": "fast"},
    ]


def test_merge_inputs_missing_values():
    assert merge_inputs(INTERFACE, {}, FILES) == [
        {"name": "image", "type": "file", "value": None},
        {"name": "extras", "type": "files", "value": []},
        {"name": "mode", "type": "property", "value": None},
    ]


def test_merge_inputs_skips_files_not_found():
    data = make_data(
        input_data=[
            {"name": "image", "file_id": 50},
            {"name": "extras", "file_ids": [51, 2]},
        ]
    )
    assert merge_inputs(INTERFACE, data, FILES)[:2] == [
        {"name": "image", "type": "file", "value": None},
        {"name": "extras", "type": "files", "value": [TEXT_FILE]},
    ]


def test_merge_outputs():
    products = {
        10: {"id": 10, "media_type": "image/tiff"},
        11: {"id": 11},
        12: {"id": 12},
    }
    results = {
        "version": "1.0",
        "output_data": [
            {"name": "logs", "file_ids": [12, 11]},
            {"name": "geotiff", "file_id": 10},
        ],
    }
    assert merge_outputs(INTERFACE, results, products) == [
        {"name": "geotiff", "type": "file", "value": products[10]},
        {"name": "logs", "type": "files", "value": [products[12], products[11]]},
    ]


@pytest.mark.parametrize("results", [None, {}, {"version": "1.0", "output_data": []}])
def test_merge_outputs_without_results(results):
    assert merge_outputs(INTERFACE, results, {}) == [
        {"name": "geotiff", "type": "file", "value": None},
        {"name": "logs", "type": "files", "value": []},
    ]
