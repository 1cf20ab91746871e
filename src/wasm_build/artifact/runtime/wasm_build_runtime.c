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
