"""python -m experiments.fisher_structure [--quick]: run the study, write its results as JSON,
then render the figures and docs/fisher_structure.md from the JSON files."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import page, study

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.fisher_structure", description=__doc__
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the small run (minutes)")
    size.add_argument("--tiny", action="store_true", help="seconds; for the test suite")
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "experiments" / "results",
        help="folder of the JSON results (default: experiments/results)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=ROOT / "docs",
        help="docs folder to render into (default: docs)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="render the page from the existing JSON results, run nothing",
    )
    args = parser.parse_args(argv)
    config = (
        study.tiny_config()
        if args.tiny
        else study.quick_config()
        if args.quick
        else study.full_config()
    )
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"fisher_structure_{config.name}.json"
    if not args.render_only:
        started = time.perf_counter()
        name = "python -m experiments.fisher_structure" + (
            " --quick" if args.quick else " --tiny" if args.tiny else ""
        )

        def save(results):
            results["command"] = name
            results["threads"] = os.environ.get("OMP_NUM_THREADS", "default")
            results["wall_seconds"] = time.perf_counter() - started
            path.write_text(json.dumps(results, indent=1, allow_nan=True))

        results = study.run(config, log=lambda line: print(line, flush=True), checkpoint=save)
        save(results)
        print(f"wrote {path} ({results['wall_seconds']:.0f} s)")
    written = page.render(args.results, args.docs, prefer=config.name)
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
