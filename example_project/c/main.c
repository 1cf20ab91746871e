/*
 * A plain C command program using the kws model: no special linker flags.
 *
 *     make                # or: clang-19 --target=wasm32-wasi --sysroot=/usr -O2 \
 *                         #       -I../build/wasm/kws main.c ../build/wasm/kws/libkws.a -lm -o kws.wasm
 *     wasmtime --dir . kws.wasm features.f32
 *
 * Reads 49x40 MFCC features (raw little-endian float32) from the file named
 * on the command line, or from stdin, and prints the 12 logits and the best
 * class. kws_init() registers the kernels explicitly, so the program works
 * whether or not constructors run and whatever the linker drops.
 */
#include <stdio.h>

#include "kws.h"

int main(int argc, char** argv) {
  static float features[KWS_INPUT0_BYTES / sizeof(float)];
  static float logits[KWS_OUTPUT0_BYTES / sizeof(float)];

  FILE* input = argc > 1 ? fopen(argv[1], "rb") : stdin;
  if (!input) {
    fprintf(stderr, "kws: cannot open %s (is its directory preopened, e.g. `--dir .`?)\n", argv[1]);
    return 1;
  }
  size_t got = fread(features, 1, sizeof features, input);
  if (input != stdin) fclose(input);
  if (got != sizeof features) {
    fprintf(stderr, "kws: read %zu bytes of features, expected %zu\n", got, sizeof features);
    return 1;
  }

  if (kws_init() != KWS_OK) {
    fprintf(stderr, "kws: %s\n", kws_last_error());
    return 1;
  }
  const void* inputs[] = {features};
  size_t input_sizes[] = {sizeof features};
  void* outputs[] = {logits};
  size_t output_sizes[] = {sizeof logits};
  if (kws_run(inputs, input_sizes, outputs, output_sizes) != KWS_OK) {
    fprintf(stderr, "kws: %s\n", kws_last_error());
    return 1;
  }

  size_t best = 0;
  printf("logits:");
  for (size_t i = 0; i < sizeof logits / sizeof logits[0]; ++i) {
    printf(" %.9g", logits[i]);
    if (logits[i] > logits[best]) best = i;
  }
  printf("\nclass: %zu\n", best);
  return 0;
}
