"""Write models/kws.onnx: a small keyword-spotting CNN with seeded random weights.

A stand-in for your trained model (the input is 49 MFCC frames of 40
coefficients, the output 12 keyword logits). Run it again to regenerate the
checked-in file; the same seed gives the same bytes.

    python models/make_kws.py
"""

from pathlib import Path

from wasm_build.testing.models import kws_cnn, save

if __name__ == "__main__":
    path = save(kws_cnn(seed=0, blocks=2), Path(__file__).with_name("kws.onnx"))
    print(f"wrote {path} ({path.stat().st_size} bytes)")
