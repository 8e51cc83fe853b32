"""Run every benchmark module in bench/ and print one report.

A benchmark is a module `bench/<name>_bench.py` exposing `run(args) -> list[dict]` (one dict per
table row) and optionally `add_arguments(parser)` for its own flags. The report (bench/report.py)
is one summary table, each figure against its issue's target, then each benchmark's rows. Each run
is also written as JSON (summary and rows) to bench/results/<UTC time>.json.
"""

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.report import render, summary_rows

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def discover() -> dict[str, object]:
    """bench/*_bench.py modules that expose `run`, by short name."""
    modules = {}
    for path in sorted(BENCH_DIR.glob("*_bench.py")):
        module = importlib.import_module(f"bench.{path.stem}")
        if callable(getattr(module, "run", None)):
            modules[path.stem.removesuffix("_bench")] = module
    return modules


def parser_for(modules: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(modules),
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="small data (10,000 jobs) for a smoke run")
    parser.add_argument("--million", action="store_true",
                        help="also measure at 1,000,000 jobs (long: seeding dominates)")
    for module in modules.values():
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
    return parser


def main(argv=None) -> int:
    modules = discover()
    args = parser_for(modules).parse_args(argv)
    chosen = {name: m for name, m in modules.items() if not args.only or name in args.only}
    rows: list[dict] = []
    started = time.time()
    for name, module in chosen.items():
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            rows += [{"bench": name, **row} for row in module.run(args)]
        except Exception as exc:  # noqa: BLE001 (a broken benchmark must not lose the others')
            traceback.print_exc()
            rows.append({"bench": name, "case": "FAILED", "error": f"{type(exc).__name__}: {exc}"})
    summary = summary_rows(rows, chosen)
    print(render(rows, summary))
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"{stamp}.json"
    out.write_text(json.dumps({
        "started": datetime.fromtimestamp(started, UTC).isoformat(),
        "seconds": round(time.time() - started, 1), "argv": sys.argv[1:],
        "python": platform.python_version(), "machine": platform.machine(),
        "benchmarks": sorted(chosen), "summary": summary, "rows": rows}, indent=2))
    print(f"results written to {out.relative_to(BENCH_DIR.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
