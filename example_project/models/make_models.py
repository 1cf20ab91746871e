"""Write models/kws.onnx: a small keyword-spotting DS-CNN with seeded weights.

    python models/make_models.py [--seed 0]

The weights are random (seeded), not trained: the example is about building
and shipping the model, and its outputs are checked against onnxruntime.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx

from wasm_build.testing.models import kws_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "kws.onnx")
    args = parser.parse_args()
    # Two depthwise-separable blocks: about 60 KB, small enough to check in.
    model = kws_cnn(seed=args.seed, blocks=2)
    onnx.checker.check_model(model)
    args.out.write_bytes(model.SerializeToString())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
