/*
 * wasm-build runtime shim: the few C symbols that TVM-generated kernels import,
 * and the helpers that generated executors use to call those kernels.
 *
 * The structs below mirror the DLPack / tvm-ffi ABI on wasm32 (checked sizes:
 * WBAny 16 bytes, WBTensor 40 bytes), so no TVM header is needed to build.
 */
#ifndef WASM_BUILD_RUNTIME_H_
#define WASM_BUILD_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* DLDevice / DLDataType / DLTensor. */
typedef struct { int32_t device_type; int32_t device_id; } WBDevice;
typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } WBDataType;
typedef struct {
  void* data;
  WBDevice device;
  int32_t ndim;
  WBDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
} WBTensor;

/* TVMFFIAny: a type index and an 8-byte payload. */
typedef struct {
  int32_t type_index;
  uint32_t zero_padding;
  union {
    int64_t v_int64;
    double v_float64;
    void* v_ptr;
  } value;
} WBAny;

enum {
  WB_TYPE_NONE = 0,
  WB_TYPE_INT = 1,
  WB_TYPE_FLOAT = 3,
  WB_TYPE_DLTENSOR_PTR = 7,
};

enum { WB_DEVICE_CPU = 1 };

/* The tvm-ffi "safe call" ABI every kernel is compiled to. */
typedef int (*WBKernel)(void* self, const WBAny* args, int32_t num_args, WBAny* result);

static inline WBAny wb_tensor_arg(WBTensor* tensor) {
  WBAny any = {WB_TYPE_DLTENSOR_PTR, 0, {0}};
  any.value.v_ptr = tensor;
  return any;
}

static inline WBAny wb_int_arg(int64_t value) {
  WBAny any = {WB_TYPE_INT, 0, {0}};
  any.value.v_int64 = value;
  return any;
}

static inline WBAny wb_float_arg(double value) {
  WBAny any = {WB_TYPE_FLOAT, 0, {0}};
  any.value.v_float64 = value;
  return any;
}

/*
 * Calls one kernel. On failure returns non-zero and copies the kernel's error
 * message (as raised through TVMFFIErrorSetRaisedFromCStrParts) into `error`.
 */
int wb_call_kernel(WBKernel kernel, const char* name, const WBAny* args, int32_t num_args,
                   char* error, size_t error_capacity);

/*
 * The same, never replaced: init's calls use it, so a driver that replaces
 * wb_call_kernel (the profiler) sees the runs' calls only.
 */
int wb_run_kernel(WBKernel kernel, const char* name, const WBAny* args, int32_t num_args,
                  char* error, size_t error_capacity);

/* Registers `symbol` under `name` in the system-library table (idempotent). */
int wb_register_kernel(const char* name, void* symbol);

/* Looks a registered kernel up; NULL when unknown. */
void* wb_lookup_kernel(const char* name);

/* Whether the `size` bytes at `pointer` lie in the module's linear memory (always true off
 * wasm): hosts pass pointers as plain numbers, and one past the end would trap. */
int wb_in_memory(const void* pointer, size_t size);

/* Whether a NUL-terminated string starts at `text` and ends inside linear memory. */
int wb_string_in_memory(const char* text);

/* SHA-256 (FIPS 180-4) of `size` bytes into `digest`: checks that a weights file belongs
 * to the build that wrote it (a sum would let a crafted file pass). */
void wb_sha256(const uint8_t* data, size_t size, uint8_t digest[32]);

#ifdef __cplusplus
}
#endif

#endif /* WASM_BUILD_RUNTIME_H_ */
