/*
 * kws_demo: run the "kws" keyword-spotting model once.
 *
 * Reads the input tensor (float32, KWS_INPUT0_BYTES bytes, e.g. MFCC frames)
 * from stdin, or uses a fixed test pattern when stdin is empty, and prints the
 * output values and the best class. A WASI command: run it with
 * `wasmtime kws_demo.wasm < input.f32`.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kws.h"

static float input[KWS_INPUT0_BYTES / sizeof(float)];
static float output[KWS_OUTPUT0_BYTES / sizeof(float)];

static void print_tensor_info(const char* role, const kws_tensor_info* info) {
  printf("%s \"%s\" %s[", role, info->name, info->dtype);
  for (int32_t d = 0; d < info->ndim; ++d) printf(d ? ", %lld" : "%lld", (long long)info->shape[d]);
  printf("], %zu bytes\n", info->nbytes);
}

static size_t read_input(void) {
  size_t total = 0, got;
  while (total < sizeof input && (got = fread((char*)input + total, 1, sizeof input - total, stdin)) > 0) {
    total += got;
  }
  return total;
}

int main(void) {
  /* The call that links the model in and registers its kernels: no constructors, no whole-archive. */
  if (kws_init() != KWS_OK) {
    fprintf(stderr, "kws_init: %s\n", kws_last_error());
    return 1;
  }
  kws_tensor_info info;
  kws_input_info(0, &info);
  print_tensor_info("input", &info);
  kws_output_info(0, &info);
  print_tensor_info("output", &info);

  size_t got = read_input();
  if (got == 0) {
    for (size_t i = 0; i < sizeof input / sizeof input[0]; ++i) input[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
  } else if (got != sizeof input || fgetc(stdin) != EOF) {
    fprintf(stderr, "stdin: expected exactly %zu bytes of float32 input\n", sizeof input);
    return 2;
  }

  const void* inputs[] = {input};
  size_t input_sizes[] = {sizeof input};
  void* outputs[] = {output};
  size_t output_sizes[] = {sizeof output};
  if (kws_run(inputs, input_sizes, outputs, output_sizes) != KWS_OK) {
    fprintf(stderr, "kws_run: %s\n", kws_last_error());
    return 1;
  }

  size_t best = 0;
  printf("values:");
  for (size_t i = 0; i < sizeof output / sizeof output[0]; ++i) {
    printf(" %.9g", output[i]);
    if (output[i] > output[best]) best = i;
  }
  printf("\nbest: %zu\n", best);
  return 0;
}
