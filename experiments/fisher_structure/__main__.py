"""python -m experiments.fisher_structure [--quick]: run the study, write its results as JSON,
then render the figures and docs/fisher_structure.md from the JSON files."""

from __future__ import annotations

import argparse
import fcntl
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
    parser.add_argument(
        "--only-missing",
        action="store_true",
        help="run only the networks not yet in the saved JSON results and merge theirs in "
        "(the saved ones are kept)",
    )
    parser.add_argument(
        "--part",
        default="0/1",
        help="with --only-missing, I/K: of the families left to run, every K-th from the I-th "
        "(K processes can share the work and the file)",
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
    if not args.render_only and args.only_missing:
        part = tuple(int(x) for x in args.part.split("/"))
        name = "python -m experiments.fisher_structure" + (
            " --quick" if args.quick else " --tiny" if args.tiny else ""
        )
        name += " --only-missing" + (f" --part {args.part}" if part[1] > 1 else "")
        _run_missing(config, path, name, part)
    elif not args.render_only:
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


def _run_missing(config, path: Path, name: str, part: tuple) -> None:
    """Run the networks of ``config`` that the results at ``path`` lack and merge them in,
    under a lock (several processes may do this at once with different ``part``s). The
    results keep a list "runs": each run's command, threads, wall time and networks; the
    records a run adds carry its index in that list."""
    started = time.perf_counter()
    lock = path.with_suffix(".lock")

    def locked(update):
        with open(lock, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            data = json.loads(path.read_text())
            if "runs" not in data:  # the first run, before runs were listed
                data["runs"] = [
                    {
                        "command": data["command"],
                        "threads": data.get("threads", "default"),
                        "wall_seconds": data["wall_seconds"],
                        "structure": len(data["structure"]),
                        "natural_gradient": len(data["natural_gradient"]),
                    }
                ]
            result = update(data)
            path.write_text(json.dumps(data, indent=1, allow_nan=True))
            return result

    def register(data):
        data["runs"].append(
            {
                "command": name,
                "threads": os.environ.get("OMP_NUM_THREADS", "default"),
                "wall_seconds": 0.0,
                "structure": 0,
                "natural_gradient": 0,
            }
        )
        done = tuple(
            frozenset(study.key(r) for r in data[kind]) for kind in ("structure", "natural_gradient")
        )
        return len(data["runs"]) - 1, done

    index, done = locked(register)

    def save(results):
        def merge(data):
            entry = data["runs"][index]
            for kind in ("structure", "natural_gradient"):
                have = {study.key(r) for r in data[kind]}
                new = [{**r, "run": index} for r in results[kind] if study.key(r) not in have]
                data[kind].extend(new)
                entry[kind] += len(new)
            entry["wall_seconds"] = time.perf_counter() - started
            data["config"] = results["config"]
            data["complete"] = all(
                k in {study.key(r) for r in data["structure"]}
                for f in config.families
                for k in study.family_keys(f, config.seeds)
            )

        locked(merge)

    def checkpoint(results):
        save(results)
        results["structure"].clear()  # merged: keep only what is new since
        results["natural_gradient"].clear()

    results = study.run(
        config, log=lambda line: print(line, flush=True), checkpoint=checkpoint, done=done,
        part=part,
    )
    save(results)
    print(f"merged into {path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
