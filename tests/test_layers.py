"""Dependencies point downward only: every module of the project (not tests/, bench/, static/) is
parsed with `ast`, mapped to its layer, and each of its imports (at the top or inside a function)
is checked against this order, top first:

    server        server.py, routes.py, http_server.py, config.py: wiring, the routes table
    auth          auth/: identity, sessions, the login and logout pages
    handlers      handlers/: the REST API and the dashboards  |  live/: the WebSocket feed and hub
    presentation  presentation/: response shapes, the error contract, query filters, templates
    engine        engine/: the job engine
    store         store/: the only code that talks to MongoDB
    core          core/: plain rules and helpers (times, the model, credentials)
    slurm         slurm/: the throwaway test cluster (the tests and engine/slurm.py use it);
                  standard library only, it imports no project module

The rule: a module may import its own layer and any layer below it, never one above.
- handlers and live share a level and must not import each other: what both need (the filter
  parsing, the error type, the serializers) lives in presentation/ below them.
- auth sits one step above handlers: its login pages are handlers built on handlers/base.py, so
  auth may import handlers (and anything lower); handlers and live never import auth, they reach
  the Authenticator through the application's settings.
- Project code never imports tests/ or bench/.

A module outside every layer fails too, so a new package gets a place here on purpose.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = {".venv", "tests", "bench", "static", "data", "templates"}

# Higher number: higher layer. Equal numbers in different layers may not import each other.
RANK = {"server": 7, "auth": 6, "handlers": 5, "live": 5, "presentation": 4, "engine": 3,
        "store": 2, "core": 1, "slurm": 0}
SERVER_MODULES = {"server", "routes", "http_server"}
PACKAGES = {"auth", "handlers", "live", "presentation", "engine", "store", "core", "slurm"}
FORBIDDEN_TOP = {"tests", "bench"}


def project_files() -> list[Path]:
    return sorted(path for path in ROOT.rglob("*.py")
                  if not ({path.relative_to(ROOT).parts[0]} & SKIPPED)
                  and not any(part.startswith(".") for part in path.relative_to(ROOT).parts))


def layer_of_module(name: str) -> str | None:
    """The layer of an imported module name, None for anything outside the project."""
    top = name.split(".", 1)[0]
    if top in SERVER_MODULES:
        return "server"
    if top in PACKAGES or top in FORBIDDEN_TOP:
        return top
    return None


def layer_of_file(path: Path) -> str | None:
    return layer_of_module(".".join(path.relative_to(ROOT).with_suffix("").parts))


def is_project_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports(source: str, package: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """(line, module) for every import in `source`, at the top or inside a function; `from a
    import b` names `a.b` when that is a project module (`from handlers import dashboard`), else
    `a`. `package`: the importing module's package, for relative imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                name = f"{module}.{alias.name}"
                found.append((node.lineno, name if is_project_module(name) else module))
    return found


def file_imports(path: Path) -> list[tuple[int, str]]:
    return imports(path.read_text(), path.relative_to(ROOT).with_suffix("").parts[:-1])


def violation(importer: str, imported: str) -> str | None:
    """Why `importer`'s layer may not import `imported`'s, or None when it may."""
    if imported in FORBIDDEN_TOP:
        return f"project code imports {imported}/"
    if importer == imported:
        return None
    if RANK[imported] > RANK[importer]:
        return f"{importer} is below {imported}"
    if RANK[imported] == RANK[importer]:
        return f"{importer} and {imported} must not import each other"
    return None


def layer_problems() -> list[str]:
    """Each broken rule as 'file:line: file -> module (why)'."""
    problems = []
    for path in project_files():
        rel = path.relative_to(ROOT).as_posix()
        importer = layer_of_file(path)
        if importer is None:
            problems.append(f"{rel}: not in any layer; give it one in tests/test_layers.py")
            continue
        seen = set()
        for line, module in file_imports(path):
            imported = layer_of_module(module)
            why = imported and violation(importer, imported)
            entry = f"{rel} -> {module}"
            if not why or entry in seen:
                continue
            seen.add(entry)
            problems.append(f"{rel}:{line}: {entry} ({why})")
    return problems


def test_dependencies_point_downward():
    problems = layer_problems()
    assert problems == [], "imports against the layer order:\n" + "\n".join(problems)


def test_the_check_sees_a_violation():
    """The checker itself: an upward import and a handlers/live import are caught."""
    assert violation("store", "handlers") == "store is below handlers"
    assert violation("live", "handlers") == "live and handlers must not import each other"
    assert violation("handlers", "auth") == "handlers is below auth"
    assert violation("auth", "handlers") is None
    assert violation("handlers", "presentation") is None
    assert violation("slurm", "core") == "slurm is below core"
    assert violation("engine", "slurm") is None
    assert violation("core", "tests") == "project code imports tests/"
    assert layer_of_module("routes") == "server" and layer_of_module("json") is None
    probe = ("import store.jobs\nfrom handlers import dashboard\n"
             "def later():\n    from live.hub import page\n")
    assert [m for _, m in imports(probe)] == ["store.jobs", "handlers.dashboard", "live.hub"]
    assert imports("from .identity import Identity\n", ("auth",)) == [(1, "auth.identity")]
