"""python -m experiments.training [--quick] [--render-only]: run the study, write the page."""

from __future__ import annotations

import os

# One thread for every method (torch and numba alike), so that the times compare like for like
# on a shared machine; set before numba is imported.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from experiments.training import harness, page, prose  # noqa: E402
from experiments.training.methods import METHODS  # noqa: E402
from experiments.training.tasks import build_tasks  # noqa: E402

#: Where each kind of run writes its results file, figures and page (quick: its own page, so
#: that a quick run never overwrites the full run's).
OUTPUTS = {
    False: (Path("docs/figures/training"), Path("docs/training.md")),
    True: (Path("docs/figures/training/quick"), Path("docs/training_quick.md")),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.training", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data, short runs, 2 seeds")
    parser.add_argument("--tasks", nargs="+", choices=sorted(build_tasks(True)))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS))
    parser.add_argument("--results", type=Path, help="the results file (JSON) to write or read")
    parser.add_argument("--page", type=Path, help="default: docs/training.md (quick: _quick)")
    parser.add_argument("--figures", type=Path, help="default: docs/figures/training[/quick]")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="add the methods to the existing results file instead of starting a new one",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="render the page from an existing results file"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    figures = args.figures or OUTPUTS[args.quick][0]
    page_path = args.page or OUTPUTS[args.quick][1]
    results_path = args.results or figures / "results.json"
    if args.render_only:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    else:
        command = " ".join(
            ["python -m experiments.training", *(argv if argv is not None else sys.argv[1:])]
        )
        defaults = harness.Config()
        config = harness.Config(
            quick=args.quick,
            tasks=tuple(args.tasks or defaults.tasks),
            methods=tuple(args.methods or defaults.methods),
            seeds=(0, 1) if args.quick else defaults.seeds,
            extensions=0 if args.quick else defaults.extensions,
            results=str(results_path),
            command=command,
        )
        results = harness.study(
            config, progress=lambda line: print(line, flush=True), merge=args.merge
        )
    page.render(results, page_path, figures, prose.PROSE)
    print(f"wrote {results_path}, {page_path} and figures in {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
