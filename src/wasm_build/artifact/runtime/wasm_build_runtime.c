/*
 * wasm-build runtime shim.
 *
 * TVM kernels compiled for wasm32 import a handful of tvm-ffi and TVM backend
 * symbols. The TVM C++ runtime is not linked into the module, so this file
 * provides them in plain C. Every definition is weak: each model archive
 * carries a copy of this object, and several models linked into one program
 * must not clash over it.
 *
 * wasm32-wasi programs are single-threaded, which keeps everything here simple:
 * one raised-error buffer, sequential "parallel" launches.
 */
#include "wasm_build_runtime.h"

#include <stdlib.h>
#include <string.h>

#define WB_WEAK __attribute__((weak))

/* ---- errors ------------------------------------------------------------ */

/* One buffer for the whole program, even when several shim copies are linked. */
WB_WEAK char wb_raised_error[512];

static void wb_append(size_t* used, const char* text) {
  size_t room = sizeof(wb_raised_error) - 1 - *used;
  size_t len = strlen(text);
  if (len > room) len = room;
  memcpy(wb_raised_error + *used, text, len);
  *used += len;
  wb_raised_error[*used] = '\0';
}

WB_WEAK void TVMFFIErrorSetRaisedFromCStrParts(const char* kind, const char** parts, int32_t num_parts) {
  size_t used = 0;
  wb_raised_error[0] = '\0';
  wb_append(&used, kind ? kind : "Error");
  wb_append(&used, ": ");
  for (int32_t i = 0; i < num_parts; ++i) {
    if (parts[i]) wb_append(&used, parts[i]);
  }
}

WB_WEAK void TVMFFIErrorSetRaisedFromCStr(const char* kind, const char* message) {
  const char* parts[1] = {message};
  TVMFFIErrorSetRaisedFromCStrParts(kind, parts, 1);
}

WB_WEAK int wb_call_kernel(WBKernel kernel, const char* name, const WBAny* args, int32_t num_args,
                           char* error, size_t error_capacity) {
  return wb_run_kernel(kernel, name, args, num_args, error, error_capacity);
}

int wb_run_kernel(WBKernel kernel, const char* name, const WBAny* args, int32_t num_args, char* error,
                  size_t error_capacity) {
  WBAny result = {WB_TYPE_NONE, 0, {0}};
  wb_raised_error[0] = '\0';
  int status = kernel(NULL, args, num_args, &result);
  if (status != 0 && error && error_capacity > 0) {
    const char* reason = wb_raised_error[0] ? wb_raised_error : "kernel failed without a message";
    size_t used = 0;
    const char* pieces[3] = {name, ": ", reason};
    for (int i = 0; i < 3 && used + 1 < error_capacity; ++i) {
      size_t len = strlen(pieces[i]);
      if (len > error_capacity - 1 - used) len = error_capacity - 1 - used;
      memcpy(error + used, pieces[i], len);
      used += len;
    }
    error[used] = '\0';
  }
  return status;
}

/* ---- system-library symbol table --------------------------------------- */

typedef struct WBSymbol {
  const char* name;
  void* symbol;
  struct WBSymbol* next;
} WBSymbol;

static WBSymbol* wb_symbols;

WB_WEAK void* wb_lookup_kernel(const char* name) {
  for (WBSymbol* it = wb_symbols; it; it = it->next) {
    if (strcmp(it->name, name) == 0) return it->symbol;
  }
  return NULL;
}

WB_WEAK int wb_register_kernel(const char* name, void* symbol) {
  if (wb_lookup_kernel(name)) return 0;
  WBSymbol* entry = (WBSymbol*)malloc(sizeof(WBSymbol));
  if (!entry) return -1;
  entry->name = name;
  entry->symbol = symbol;
  entry->next = wb_symbols;
  wb_symbols = entry;
  return 0;
}

/* Called by the kernels' own constructor when constructors do run. */
WB_WEAK int TVMFFIEnvModRegisterSystemLibSymbol(const char* name, void* symbol) {
  return wb_register_kernel(name, symbol);
}

/* ---- workspace memory -------------------------------------------------- */

enum { WB_WORKSPACE_ALIGNMENT = 64 };

WB_WEAK void* TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes,
                                       int dtype_code_hint, int dtype_bits_hint) {
  (void)device_type;
  (void)device_id;
  (void)dtype_code_hint;
  (void)dtype_bits_hint;
  size_t size = (size_t)((nbytes + WB_WORKSPACE_ALIGNMENT - 1) / WB_WORKSPACE_ALIGNMENT * WB_WORKSPACE_ALIGNMENT);
  /* A null return makes the kernel raise "allocation failed", which we report. */
  return aligned_alloc(WB_WORKSPACE_ALIGNMENT, size ? size : WB_WORKSPACE_ALIGNMENT);
}

WB_WEAK int TVMBackendFreeWorkspace(int device_type, int device_id, void* ptr) {
  (void)device_type;
  (void)device_id;
  free(ptr);
  return 0;
}

/* ---- parallelism: one thread, so one task does all the work ------------ */

typedef struct {
  void* sync_handle;
  int32_t num_task;
} WBParallelGroupEnv;

typedef int (*WBParallelLambda)(int task_id, WBParallelGroupEnv* penv, void* cdata);

WB_WEAK int TVMBackendParallelLaunch(WBParallelLambda flambda, void* cdata, int num_task) {
  (void)num_task;
  WBParallelGroupEnv env = {NULL, 1};
  return flambda(0, &env, cdata);
}

WB_WEAK int TVMBackendParallelBarrier(int task_id, WBParallelGroupEnv* penv) {
  (void)task_id;
  (void)penv;
  return 0;
}

/* ---- pointers from the host ------------------------------------------------ */

static size_t wb_memory_bytes(void) {
#ifdef __wasm__
  return __builtin_wasm_memory_size(0) * (size_t)65536;
#else
  return (size_t)-1;
#endif
}

WB_WEAK int wb_in_memory(const void* pointer, size_t size) {
  size_t limit = wb_memory_bytes();
  uintptr_t start = (uintptr_t)pointer;
  return pointer != NULL && start <= limit && size <= limit - start;
}

WB_WEAK int wb_string_in_memory(const char* text) {
  size_t limit = wb_memory_bytes();
  if (!wb_in_memory(text, 1)) return 0;
  for (uintptr_t at = (uintptr_t)text; at < limit; ++at)
    if (*(const char*)at == '\0') return 1;
  return 0;
}

/* ---- SHA-256 (FIPS 180-4) -------------------------------------------------- */

static const uint32_t wb_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t wb_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void wb_sha256_block(uint32_t state[8], const uint8_t block[64]) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8 |
           (uint32_t)block[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = wb_rotr(w[i - 15], 7) ^ wb_rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = wb_rotr(w[i - 2], 17) ^ wb_rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = h + (wb_rotr(e, 6) ^ wb_rotr(e, 11) ^ wb_rotr(e, 25)) + ((e & f) ^ (~e & g)) + wb_sha256_k[i] + w[i];
    uint32_t t2 = (wb_rotr(a, 2) ^ wb_rotr(a, 13) ^ wb_rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  state[0] += a; state[1] += b; state[2] += c; state[3] += d;
  state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

WB_WEAK void wb_sha256(const uint8_t* data, size_t size, uint8_t digest[32]) {
  uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  size_t done = 0;
  for (; size - done >= 64; done += 64) wb_sha256_block(state, data + done);
  /* The tail, the 0x80 marker and the length in bits, in one or two last blocks. */
  uint8_t last[128] = {0};
  size_t tail = size - done;
  memcpy(last, data + done, tail);
  last[tail] = 0x80;
  size_t blocks = tail < 56 ? 1 : 2;
  uint64_t bits = (uint64_t)size * 8;
  for (int i = 0; i < 8; ++i) last[64 * blocks - 1 - i] = (uint8_t)(bits >> (8 * i));
  for (size_t i = 0; i < blocks; ++i) wb_sha256_block(state, last + 64 * i);
  for (int i = 0; i < 8; ++i) {
    digest[4 * i] = (uint8_t)(state[i] >> 24);
    digest[4 * i + 1] = (uint8_t)(state[i] >> 16);
    digest[4 * i + 2] = (uint8_t)(state[i] >> 8);
    digest[4 * i + 3] = (uint8_t)state[i];
  }
}
