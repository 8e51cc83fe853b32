"""Settings: every option declared once, in `Settings` below, with its type, default, help and
check. The command-line flags, the JOBDECK_* variables and README.md's settings table are made
from that declaration (`python -m core.settings --readme` rewrites the table; a test checks it).

Load order: built-in default < settings.yaml (or `--settings FILE`) < JOBDECK_* environment
variables < flags. Unknown keys in the file are an error, so typos do not pass. Values are
coerced and checked when a Settings is made, whatever made it (the loader, or a test's
`Settings(port=0)`), and tokens and user entries are hashed there (core/credentials.py).
"""

import argparse
import dataclasses
import ipaddress
import os
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.credentials import token_entry, user_entry

ENV_PREFIX = "JOBDECK_"
DEFAULT_FILE = "settings.yaml"


class SettingsError(ValueError):
    pass


def boolean(value) -> bool:
    """true/false, yes/no, on/off, 1/0: YAML gives booleans, flags and the environment text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(value)


def entries(value) -> list[str]:
    """A list from YAML, or one comma-separated string from a flag or the environment."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def host_name(text: str) -> str:
    """The name in a Host header or an allowed_hosts entry: lower case, without port, brackets
    or a final dot."""
    name = text.strip().lower()
    if name.startswith("["):
        return name[1:].partition("]")[0]
    if name.count(":") == 1:
        name = name.partition(":")[0]
    return name.rstrip(".")


def hostnames(value) -> tuple[str, ...]:
    """allowed_hosts: names as host_name gives them; `*` stands for any."""
    names = tuple(host_name(item) for item in entries(value))
    bad = [name for name in names if not re.fullmatch(r"\*|[a-z0-9.:_-]+", name)]
    if bad:
        raise ValueError(f"not a host name: {bad[0]!r}")
    return names


def bwrap_or_none(value) -> str:
    """The `sandbox` setting: bwrap or none."""
    text = str(value).strip().lower()
    if text not in ("bwrap", "none"):
        raise ValueError(value)
    return text


def local_or_slurm(value) -> str:
    """The `executor` setting: local or slurm."""
    text = str(value).strip().lower()
    if text not in ("local", "slurm"):
        raise ValueError(value)
    return text


def token_entries(value) -> tuple[str, ...]:
    """`role:token` entries hashed at once: only `role:sha256:<hex>` stays in memory."""
    return tuple(token_entry(item) for item in entries(value))


def user_entries(value) -> tuple[str, ...]:
    return tuple(user_entry(item) for item in entries(value))


def folders(value) -> tuple[str, ...]:
    """Folder paths: a YAML list, or comma-separated in a flag or the environment."""
    return tuple(entries(value))


def ip_networks(value) -> tuple[str, ...]:
    """Addresses or CIDR ranges (`10.0.0.5`, `10.0.0.0/8`, `::1`), each kept as its network."""
    return tuple(str(ipaddress.ip_network(item, strict=False)) for item in entries(value))


# How a value of each declared type is read from YAML, the environment or a flag. Text settings
# are taken as given (YAML has already typed them).
PARSERS: dict[type, Callable | None] = {int: int, float: float, bool: boolean, str: None}


def option(default, help: str, *, parse: Callable | None = None, positive: bool = False,
           low: float | None = None, high: float | None = None, unset: str | None = None,
           secret: bool = False):
    """One setting: its default and help text, and how it is checked.

    `parse` reads a value (default: by the field's type, see PARSERS); `positive`: greater than
    zero; `low`/`high`: bounds (`low=0` alone: not negative); `unset`: what a None default means,
    for the README; `secret`: neither a bad value's message nor the repr shows it."""
    return dataclasses.field(default=default, repr=not secret, metadata={
        "help": help, "parse": parse, "positive": positive, "low": low, "high": high,
        "unset": unset, "secret": secret})


@dataclass(frozen=True)
class Settings:
    # -- serving ----------------------------------------------------------------------------------
    host: str = option("127.0.0.1", "listen address")
    port: int = option(8000, "listen port (0: any free port)", low=0, high=65535)
    data_dir: str = option("./data", "where the embedded store keeps its files and its socket, "
                                     "with the workspaces, execution logs and auth.json; made "
                                     "(or tightened to) mode 0700: the server's user only")
    mongo_url: str | None = option(None, "a MongoDB URL to use instead of the embedded store; "
                                         "give it credentials (MongoDB authentication), and "
                                         "TLS when the store is on another machine",
                                   unset="none: start the embedded store (nx-27017) under "
                                         "data_dir")
    db_name: str = option("jobdeck", "the store's database name")
    workspace_roots: tuple[str, ...] = option((), "folders a workspace's base_path must be in "
                                                  "(POST /workspaces/), comma-separated in a "
                                                  "flag or the environment", parse=folders,
                                              unset="data_dir")
    allowed_hosts: tuple[str, ...] = option(
        (), "more names the Host header may give (port ignored; `*`: any), comma-separated in a "
            "flag or the environment; any other Host gets 400", parse=hostnames,
        unset="none: only localhost, 127.0.0.1, ::1 and `host`; with `host` 0.0.0.0 or ::, "
              "also this machine's name and any IP address")
    store_timeout_ms: int = option(5000, "how long a store call may wait for the server before "
                                         "answering 503 (ms)")
    # -- live updates (live/) ---------------------------------------------------------------------
    ws_ping_interval: float = option(20.0, "seconds between WebSocket pings to live subscribers "
                                           "(0: none)")
    ws_ping_timeout: float = option(20.0, "seconds without a pong before a live subscriber is "
                                          "dropped")
    ws_max_queue: int = option(256, "messages a live subscriber may fall behind before it is "
                                    "closed (1013)")
    ws_max_message_size: int = option(65536, "largest message accepted from a live subscriber, "
                                             "in bytes")
    live_stale_after: float = option(2.0, "seconds the store may hold a change the live feed has "
                                          "not delivered before the feed restarts",
                                     positive=True)
    # -- request limits (http_server.py), checked before a body is read ---------------------------
    max_body_kb: int = option(1024, "largest JSON request body, in KiB (larger: 413)",
                              positive=True)
    max_upload_mb: int = option(256, "largest POST /files/ upload, in MiB (larger: 413); "
                                     "streamed to a temp file in its workspace as it arrives", positive=True)
    max_query_values: int = option(1000, "most query parameter values in one request "
                                         "(more: 400)", positive=True)
    max_header_kb: int = option(256, "largest request line plus headers, in KiB", positive=True)
    header_timeout: float = option(10.0, "seconds a new connection has to send its first "
                                         "request's line and headers (then it is closed)",
                                   positive=True)
    idle_timeout: float = option(60.0, "seconds a kept-alive connection may wait for its next "
                                       "request (then it is closed; a request begun by then gets "
                                       "header_timeout more); WebSockets are not affected",
                                 positive=True)
    body_timeout: float = option(60.0, "seconds a request body may take to arrive, plus one per "
                                       "MiB it declares (then the connection is closed)",
                                 positive=True)
    # -- the job engine (engine/) -----------------------------------------------------------------
    engine: bool = option(True, "run queued jobs on this machine (false: API and dashboards "
                                "only)")
    engine_cpus: float | None = option(None, "CPUs the engine may schedule", positive=True,
                                       unset="this machine's logical CPUs")
    engine_mem: float | None = option(None, "memory in MiB the engine may schedule",
                                      positive=True, unset="this machine's memory")
    cancel_grace: float = option(10.0, "seconds between SIGTERM and SIGKILL when a job is "
                                       "canceled or times out", low=0)
    engine_poll_interval: float = option(0.5, "seconds between scheduling passes and checks for "
                                              "canceled jobs", positive=True)
    engine_reserve_after: float = option(60.0, "seconds a job that does not fit waits before "
                                               "smaller jobs ranked after it stop starting",
                                         low=0)
    engine_dead_after: float = option(30.0, "seconds an engine may go without a heartbeat "
                                            "before its running jobs are failed as node-lost and "
                                            "retried", positive=True)
    drain_timeout: float = option(0.0, "seconds a stopping server (SIGTERM) keeps serving while "
                                       "running jobs finish; then they fail (scheduler-lost, "
                                       "retried). 0: at once", low=0)
    sandbox: str | None = option(None, "how job commands run: `bwrap` (a bubblewrap sandbox: "
                                       "read-only system, only the execution folder and inputs "
                                       "visible, no network unless the interface asks) or "
                                       "`none` (as the server's user, unconfined)",
                                 parse=bwrap_or_none,
                                 unset="`bwrap` where bwrap works (checked at start), else "
                                       "`none` with a warning")
    job_user: str = option("nobody", "the user sandboxed jobs run as when the server runs as "
                                     "root")
    executor: str = option("local", "where jobs run: `local` (processes of this server) or "
                                    "`slurm` (batch jobs on the Slurm cluster that `SLURM_CONF` "
                                    "or the Slurm CLI's defaults name)", parse=local_or_slurm)
    slurm_partition: str | None = option(None, "the Slurm partition jobs are submitted to",
                                         unset="the cluster's default partition")
    slurm_poll_interval: float = option(1.0, "seconds between reads of the Slurm jobs' states "
                                             "(one `squeue` for all of them)", positive=True)
    slurm_extra_args: tuple[str, ...] = option((), "more sbatch arguments (e.g. `--qos=high`), "
                                                   "comma-separated in a flag or the environment",
                                               parse=folders, unset="none")
    demo: bool = option(False, "register demo job types and keep submitting jobs")
    # -- authentication (auth/) --------------------------------------------------------
    auth: bool = option(True, "require credentials (`--no-auth`: local use only; /health, "
                              "/metrics stay open)")
    tokens: tuple[str, ...] = option((), "API tokens, `role:token` or `role:sha256:<hex>` (role: "
                                         "viewer or operator), comma-separated in a flag or the "
                                         "environment", parse=token_entries, secret=True,
                                     unset="none: with no users either, an operator token is "
                                           "made at first start (login URL printed once)")
    users: tuple[str, ...] = option((), "dashboard logins, `name:role:<hash>` (`python -m "
                                        "auth hash-password`)", parse=user_entries,
                                    secret=True, unset="none")
    cookie_secret: str | None = option(None, "signs the dashboard session cookie", secret=True,
                                       unset="one made and kept in data_dir/auth.json")
    trusted_proxies: tuple[str, ...] = option(
        (), "reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For, X-Real-IP and "
            "X-Forwarded-Proto are believed; from any other peer they are ignored",
        parse=ip_networks, unset="none: the peer's own address counts")

    def __post_init__(self):
        """Coerce and check every value, in declaration order (the first bad one is named)."""
        for spec in dataclasses.fields(self):
            object.__setattr__(self, spec.name, _coerce(spec, getattr(self, spec.name)))

    def replace(self, **changes) -> "Settings":
        """A copy with `changes` (coerced and checked like any other value)."""
        return dataclasses.replace(self, **changes)


def _parser_for(spec: dataclasses.Field) -> Callable | None:
    if spec.metadata["parse"] is not None:
        return spec.metadata["parse"]
    declared = spec.type
    if isinstance(declared, types.UnionType):  # `float | None`: parsed as a float
        declared = next(kind for kind in typing.get_args(declared) if kind is not type(None))
    if not isinstance(declared, type):
        raise TypeError(f"setting {spec.name}: declare its type as a class, or give `parse`")
    return PARSERS[declared]


def is_boolean(spec: dataclasses.Field) -> bool:
    """Boolean settings may be given as bare flags (`--demo` means `--demo true`)."""
    return _parser_for(spec) is boolean


def _coerce(spec: dataclasses.Field, value):
    parse = _parser_for(spec)
    if value is None or parse is None:
        return value
    key, meta = spec.name, spec.metadata
    try:
        value = parse(value)
    except (TypeError, ValueError) as exc:
        if meta["secret"]:  # the message names the problem, never the secret
            raise SettingsError(f"{key}: {exc}") from None
        raise SettingsError(f"{key} must be {parse.__name__}, not {value!r}") from None
    low, high = meta["low"], meta["high"]
    if high is not None and not low <= value <= high:
        raise SettingsError(f"{key} must be from {low} to {high}, not {value}")
    if meta["positive"] and value <= 0:
        raise SettingsError(f"{key} must be greater than zero, not {value}")
    if low is not None and high is None and value < low:
        bound = "not be negative" if low == 0 else f"be at least {low}"
        raise SettingsError(f"{key} must {bound}, not {value}")
    return value


FIELDS = {spec.name: spec for spec in dataclasses.fields(Settings)}
# The built-in defaults, for components made without settings (tests, benchmarks).
DEFAULTS = Settings()


def env_name(key: str) -> str:
    return f"{ENV_PREFIX}{key.upper()}"


def flag_name(key: str) -> str:
    return f"--{key.replace('_', '-')}"


def parse_flags(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Jobdeck: live job service and dashboard")
    parser.add_argument("--settings", default=DEFAULT_FILE, help="settings file (YAML)")
    for key, spec in FIELDS.items():
        bare: dict[str, typing.Any] = {"nargs": "?", "const": "true"} if is_boolean(spec) else {}
        parser.add_argument(flag_name(key), dest=key, default=None,
                            help=f"{spec.metadata['help']} [{env_name(key)}]".replace("%", "%%"),
                            **bare)
    parser.add_argument("--no-auth", dest="auth", action="store_const", const="false",
                        help="serve without authentication (local use only)")
    return parser.parse_args(argv)


def load_settings(argv=None, environ=None) -> Settings:
    """Merge the four layers; unknown keys in the file are an error so typos do not pass."""
    flags = parse_flags(argv)
    environ = os.environ if environ is None else environ
    values: dict = {}
    path = Path(flags.settings)
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path} must hold a mapping of settings")
        unknown = sorted(set(loaded) - set(FIELDS))
        if unknown:
            raise SettingsError(f"{path}: unknown settings {', '.join(unknown)}")
        values.update(loaded)
    elif flags.settings != DEFAULT_FILE:
        raise SettingsError(f"settings file {path} does not exist")
    for key in FIELDS:
        env = environ.get(env_name(key))
        if env is not None:
            values[key] = env
        value = getattr(flags, key)
        if value is not None:
            values[key] = value
    return Settings(**values)


# -- README.md's settings table ------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"
TABLE_START, TABLE_END = "<!-- settings-table -->", "<!-- /settings-table -->"


def _shown(spec: dataclasses.Field) -> str:
    if spec.default is None or spec.default == ():
        return spec.metadata["unset"] or "none"
    if isinstance(spec.default, bool):
        return f"`{str(spec.default).lower()}`"
    return f"`{spec.default}`"


def _check(spec: dataclasses.Field) -> str:
    meta = spec.metadata
    if meta["high"] is not None:
        return f"{meta['low']}..{meta['high']}"
    if meta["positive"]:
        return "> 0"
    if meta["low"] is not None:
        return f">= {meta['low']}"
    return ""


def settings_table() -> str:
    """The markdown table of every setting, as README.md shows it."""
    lines = ["| setting | flag | environment | default | checked | what |",
             "|---|---|---|---|---|---|"]
    for key, spec in FIELDS.items():
        flag = f"`{flag_name(key)}`" + (" (bare: true)" if is_boolean(spec) else "")
        if key == "auth":
            flag += ", `--no-auth`"
        help_text = spec.metadata["help"].replace("|", "\\|")
        lines.append(f"| `{key}` | {flag} | `{env_name(key)}` | {_shown(spec)} | "
                     f"{_check(spec)} | {help_text} |")
    return "\n".join(lines)


def readme_with_table(text: str) -> str:
    """`text` (README.md) with the part between the table markers replaced by settings_table()."""
    pattern = re.compile(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END), re.DOTALL)
    if not pattern.search(text):
        raise SettingsError(f"README.md has no {TABLE_START} ... {TABLE_END} markers")
    return pattern.sub(lambda _: f"{TABLE_START}\n{settings_table()}\n{TABLE_END}", text, count=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.settings",
                                     description="Jobdeck's settings, as declared")
    parser.add_argument("--readme", action="store_true",
                        help="rewrite README.md's settings table from the declaration")
    args = parser.parse_args(argv)
    if args.readme:
        README.write_text(readme_with_table(README.read_text()))
        print(f"updated the settings table in {README}")
    else:
        print(settings_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
