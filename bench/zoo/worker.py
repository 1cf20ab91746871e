"""One case in its own process (run.py starts one per case, with a timeout):

    python -m bench.zoo.worker CASE_ID --work DIR --exports DIR --result FILE.json [--speed]
"""

from __future__ import annotations

import os

# Before TVM or onnxruntime start their thread pools: one thread, as in wasm.
os.environ.setdefault("TVM_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.zoo.worker", description=__doc__)
    parser.add_argument("case")
    parser.add_argument("--work", type=Path, required=True, help="build directory")
    parser.add_argument("--exports", type=Path, required=True, help="export cache")
    parser.add_argument("--result", type=Path, required=True, help="where the case's result (JSON) goes")
    parser.add_argument("--speed", action="store_true", help="time a passing case inside its module (speed.py)")
    args = parser.parse_args(argv)

    from .evaluate import evaluate
    from .export import ExportCache
    from .models import case

    result = evaluate(case(args.case), args.work, ExportCache(args.exports), speed=args.speed)
    args.result.write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
