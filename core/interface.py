"""Scale job interfaces (version 1.0), error mappings and job data.

Pure domain logic: no database and no I/O. Callers look up the files and workspaces that a
job's data mentions (see ``referenced_file_ids`` and ``referenced_workspace_ids``) and pass
them in, so every rule here can be tested without a store.

Structural rules live in JSON schemas checked by ``jsonschema``; the hand-written code only
covers rules that relate several fields or external records.
"""

import copy
import json
import re
import shlex

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import best_match

from core.text import control_character

SCHEMA_VERSION = "1.0"

# Placeholders such as ${input_file} in command_arguments.
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# Placeholders that Scale fills in itself rather than from an input.
SYSTEM_PLACEHOLDERS = frozenset({"job_output_dir"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Which job data key carries the value of each input type.
_VALUE_KEY = {"property": "value", "file": "file_id", "files": "file_ids"}

_NAME = {"type": "string", "pattern": "^[a-zA-Z0-9_-]+$"}
_NAME_RE = re.compile("[a-zA-Z0-9_-]+")

INTERFACE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["command", "command_arguments"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": SCHEMA_VERSION, "default": SCHEMA_VERSION},
        "command": {"type": "string", "minLength": 1},
        "command_arguments": {"type": "string"},
        "input_data": {
            "type": "array",
            "items": {"$ref": "#/$defs/input"},
            "default": [],
        },
        "output_data": {
            "type": "array",
            "items": {"$ref": "#/$defs/output"},
            "default": [],
        },
        "shared_resources": {
            "type": "array",
            "items": {"$ref": "#/$defs/shared_resource"},
            "default": [],
        },
        # Not in Scale (whose jobs ran in Docker): whether the job may use the network; the
        # job sandbox (engine/sandbox.py) gives it none otherwise. Absent means false.
        "network": {"type": "boolean", "default": False,
                    "description": "Whether the job may use the network (not in Scale); "
                                   "sandboxed jobs have none otherwise"},
    },
    "$defs": {
        "input": {
            "type": "object",
            "required": ["name", "type"],
            "additionalProperties": False,
            "properties": {
                "name": _NAME,
                "type": {"enum": ["property", "file", "files"]},
                "required": {"type": "boolean", "default": True},
                "media_types": {"type": "array", "items": {"type": "string"}},
            },
        },
        "output": {
            "type": "object",
            "required": ["name", "type"],
            "additionalProperties": False,
            "properties": {
                "name": _NAME,
                "type": {"enum": ["file", "files"]},
                "media_type": {"type": "string"},
                "required": {"type": "boolean", "default": True},
            },
        },
        "shared_resource": {
            "type": "object",
            "required": ["name", "type"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "type": {"type": "string"},
                "required": {"type": "boolean", "default": True},
            },
        },
    },
}

ERROR_MAPPING_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"const": SCHEMA_VERSION, "default": SCHEMA_VERSION},
        "exit_codes": {
            "type": "object",
            # Canonical integers only, so a lookup by str(exit_code) always finds the entry.
            "propertyNames": {"pattern": "^(0|-?[1-9][0-9]*)$"},
            "additionalProperties": {"type": "string"},
            "default": {},
        },
    },
}

_ID = {"type": "integer"}

JOB_DATA_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "version": {"const": SCHEMA_VERSION, "default": SCHEMA_VERSION},
        "input_data": {
            "type": "array",
            "default": [],
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "value": {"type": "string"},
                    "file_id": _ID,
                    "file_ids": {
                        "type": "array",
                        "items": _ID,
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                },
            },
        },
        "output_data": {
            "type": "array",
            "default": [],
            "items": {
                "type": "object",
                "required": ["name", "workspace_id"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "workspace_id": _ID},
            },
        },
    },
}


class InvalidInterface(ValueError):
    """A job interface breaks the schema or a cross-field rule."""


class InvalidErrorMapping(ValueError):
    """An error mapping breaks the schema or names an unknown error."""


class InvalidJobData(ValueError):
    """Job data does not fit its job type's interface."""


def _is_id(value):
    """Ids must be real ints: jsonschema would otherwise accept 1.0, and bool is an int subclass."""
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: _is_id(value)
    ),
)
_INTERFACE_VALIDATOR = _Validator(INTERFACE_SCHEMA)
_ERROR_MAPPING_VALIDATOR = _Validator(ERROR_MAPPING_SCHEMA)
_JOB_DATA_VALIDATOR = _Validator(JOB_DATA_SCHEMA)


def _format_path(parts):
    """Render a path such as ('input_data', 1, 'type') as input_data[1].type."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _message(path, text):
    """Prefix a message with its path; root-level messages stand alone."""
    return f"{path}: {text}" if path else text


def _check_schema(validator, instance, exc_class):
    """Raise exc_class with a one-line message for the most relevant schema error."""
    error = best_match(validator.iter_errors(instance))
    if error is not None:
        raise exc_class(_message(_format_path(error.absolute_path), error.message))


def _with_defaults(obj, keys):
    """Copy obj, adding each missing key from keys (a dict of defaults)."""
    result = copy.deepcopy(obj)
    for key, default in keys.items():
        result.setdefault(key, copy.deepcopy(default))
    return result


def command_argument_names(interface: dict) -> list[str]:
    """Placeholder names in command_arguments, in order of first use, without repeats."""
    return list(
        dict.fromkeys(_PLACEHOLDER.findall(interface.get("command_arguments", "")))
    )


def validate_interface(interface: dict) -> dict:
    """Validate a job interface and return a copy with every default filled in."""
    _check_schema(_INTERFACE_VALIDATOR, interface, InvalidInterface)
    result = _with_defaults(
        interface,
        {
            "version": SCHEMA_VERSION,
            "input_data": [],
            "output_data": [],
            "shared_resources": [],
        },
    )
    for section in ("input_data", "output_data", "shared_resources"):
        result[section] = [
            _with_defaults(item, {"required": True}) for item in result[section]
        ]

    seen = set()
    for section in ("input_data", "output_data"):
        for index, item in enumerate(result[section]):
            path = f"{section}[{index}]"
            if item["name"] in seen:
                raise InvalidInterface(f'{path}.name: duplicate name "{item["name"]}"')
            seen.add(item["name"])
            if item["type"] == "property" and "media_types" in item:
                raise InvalidInterface(
                    f"{path}.media_types: only file and files inputs take media_types"
                )
            if section == "input_data" and item["type"] != "property":
                item.setdefault("media_types", [])

    _check_texts(result)
    known = {item["name"] for item in result["input_data"]} | SYSTEM_PLACEHOLDERS
    for name in command_argument_names(result):
        if name not in known:
            raise InvalidInterface(
                f'command_arguments: unknown placeholder "${{{name}}}"'
            )
    return result


def _check_texts(interface: dict) -> None:
    """What the schema cannot say: names are whole names (Python's `$` also matches before a
    final newline), other text holds no control characters, and the command line splits into
    words the way the engine splits it (engine/runner.py build_argv: shlex, no shell), without a
    NUL no argv can carry."""
    for section in ("input_data", "output_data"):
        for index, item in enumerate(interface[section]):
            if not _NAME_RE.fullmatch(item["name"]):
                raise InvalidInterface(f"{section}[{index}].name: {item['name']!r} is not a "
                                       "name: use letters, digits, _ and -")
            for key in ("media_type", "media_types"):
                values = item.get(key)
                for value in [values] if isinstance(values, str) else values or []:
                    _no_control(f"{section}[{index}].{key}", value)
    for index, item in enumerate(interface["shared_resources"]):
        for key in ("name", "type"):
            _no_control(f"shared_resources[{index}].{key}", item[key])
    _check_command(interface)


def _check_command(interface: dict) -> None:
    for key in ("command", "command_arguments"):
        if "\x00" in interface[key]:
            raise InvalidInterface(f"{key} holds a NUL character, which no command line can "
                                   "carry")
        try:
            words = shlex.split(interface[key])
        except ValueError as exc:
            raise InvalidInterface(f"{key} cannot be split into words: {exc}") from None
        if key == "command" and not words:
            raise InvalidInterface("command holds no words")


def _no_control(path: str, text: str) -> None:
    found = control_character(text)
    if found:
        raise InvalidInterface(f"{path} holds a control character ({found})")


def validate_error_mapping(mapping: dict, known_error_names: set[str]) -> dict:
    """Validate an exit-code-to-error mapping and return a copy with defaults filled in."""
    _check_schema(_ERROR_MAPPING_VALIDATOR, mapping, InvalidErrorMapping)
    result = _with_defaults(mapping, {"version": SCHEMA_VERSION, "exit_codes": {}})
    for code, error_name in result["exit_codes"].items():
        if error_name not in known_error_names:
            raise InvalidErrorMapping(
                f'exit_codes["{code}"]: unknown error "{error_name}"'
            )
    return result


def _entries(data, section):
    """The dict entries of data[section], ignoring anything malformed."""
    items = data.get(section) if isinstance(data, dict) else None
    return (
        [item for item in items if isinstance(item, dict)]
        if isinstance(items, list)
        else []
    )


def _id_or_none(value):
    """value if it is a usable id, else None."""
    return value if _is_id(value) else None


def referenced_file_ids(data: dict) -> set[int]:
    """File ids that job data mentions; tolerant of malformed data so it can run before validation."""
    ids = set()
    for entry in _entries(data, "input_data"):
        ids.add(_id_or_none(entry.get("file_id")))
        file_ids = entry.get("file_ids")
        if isinstance(file_ids, list):
            ids.update(_id_or_none(file_id) for file_id in file_ids)
    ids.discard(None)
    return ids


def referenced_workspace_ids(data: dict) -> set[int]:
    """Workspace ids that job data mentions; tolerant of malformed data like referenced_file_ids."""
    ids = {
        _id_or_none(entry.get("workspace_id"))
        for entry in _entries(data, "output_data")
    }
    ids.discard(None)
    return ids


def _check_input_files(path, spec, entry, files_by_id):
    """Check that the files an input names exist and have an accepted media type."""
    if spec["type"] == "file":
        located = [(f"{path}.file_id", entry["file_id"])]
    else:
        located = [
            (f"{path}.file_ids[{i}]", file_id)
            for i, file_id in enumerate(entry["file_ids"])
        ]
    media_types = spec.get("media_types") or []
    for file_path, file_id in located:
        scale_file = files_by_id.get(file_id)
        if scale_file is None:
            raise InvalidJobData(f"{file_path}: file {file_id} does not exist")
        media_type = scale_file.get("media_type")
        if media_types and media_type not in media_types:
            raise InvalidJobData(
                f'{file_path}: file {file_id} has media type "{media_type}", '
                f"expected one of {json.dumps(media_types)}"
            )


def _check_value(path, value):
    if "\x00" in value:
        raise InvalidJobData(f"{path}.value holds a NUL character, which no command line can "
                             "carry")


def _check_inputs(interface, entries, files_by_id):
    """Match job data inputs against the interface inputs."""
    specs = {spec["name"]: spec for spec in interface.get("input_data", [])}
    seen = set()
    for index, entry in enumerate(entries):
        path = f"input_data[{index}]"
        name = entry["name"]
        spec = specs.get(name)
        if spec is None:
            raise InvalidJobData(f'{path}: unknown input "{name}"')
        if name in seen:
            raise InvalidJobData(f'{path}: duplicate input "{name}"')
        seen.add(name)
        expected = _VALUE_KEY[spec["type"]]
        for key in _VALUE_KEY.values():
            if key != expected and key in entry:
                raise InvalidJobData(
                    f'{path}: {spec["type"]} input "{name}" does not take "{key}"'
                )
        if expected not in entry:
            raise InvalidJobData(
                f'{path}: {spec["type"]} input "{name}" needs "{expected}"'
            )
        if spec["type"] != "property":
            _check_input_files(path, spec, entry, files_by_id)
        else:
            _check_value(path, entry["value"])
    for name, spec in specs.items():
        if spec.get("required", True) and name not in seen:
            raise InvalidJobData(f'input_data: required input "{name}" is missing')


def _check_outputs(interface, entries):
    """Every interface output needs exactly one entry naming its workspace."""
    names = {spec["name"] for spec in interface.get("output_data", [])}
    seen = set()
    for index, entry in enumerate(entries):
        path = f"output_data[{index}]"
        if entry["name"] not in names:
            raise InvalidJobData(f'{path}: unknown output "{entry["name"]}"')
        if entry["name"] in seen:
            raise InvalidJobData(f'{path}: duplicate output "{entry["name"]}"')
        seen.add(entry["name"])
    for spec in interface.get("output_data", []):
        if spec["name"] not in seen:
            raise InvalidJobData(f'output_data: output "{spec["name"]}" is missing')


def validate_job_data(
    interface: dict, data: dict, files_by_id: dict[int, dict]
) -> dict:
    """Validate job data against a validated interface; files_by_id maps id to file dict."""
    _check_schema(_JOB_DATA_VALIDATOR, data, InvalidJobData)
    result = _with_defaults(
        data, {"version": SCHEMA_VERSION, "input_data": [], "output_data": []}
    )
    _check_inputs(interface, result["input_data"], files_by_id)
    _check_outputs(interface, result["output_data"])
    return result


def _merge(specs, entries, objects_by_id):
    """Pair interface entries with the values in data/results entries, in interface order."""
    by_name: dict[str, dict] = {}
    for entry in entries:
        if isinstance(entry.get("name"), str):
            by_name.setdefault(entry["name"], entry)
    merged = []
    for spec in specs:
        entry = by_name.get(spec["name"], {})
        if spec["type"] == "property":
            value = entry.get("value")
        elif spec["type"] == "file":
            value = objects_by_id.get(_id_or_none(entry.get("file_id")))
        else:
            file_ids = entry.get("file_ids")
            file_ids = file_ids if isinstance(file_ids, list) else []
            value = [
                objects_by_id[i]
                for i in map(_id_or_none, file_ids)
                if i in objects_by_id
            ]
        merged.append({"name": spec["name"], "type": spec["type"], "value": value})
    return merged


def merge_inputs(
    interface: dict, data: dict, files_by_id: dict[int, dict]
) -> list[dict]:
    """The job details "inputs" list: interface inputs with their values from the job data."""
    return _merge(
        interface.get("input_data", []), _entries(data, "input_data"), files_by_id
    )


def merge_outputs(
    interface: dict, results: dict | None, products_by_id: dict[int, dict]
) -> list[dict]:
    """The job details "outputs" list: interface outputs with product files from the results."""
    return _merge(
        interface.get("output_data", []),
        _entries(results, "output_data"),
        products_by_id,
    )
