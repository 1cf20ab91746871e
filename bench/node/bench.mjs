// Times onnxruntime-web's wasm backend (one thread, SIMD) on the models of a
// job file written by bench/run.py, and prints one JSON object on stdout.
//
//   node bench.mjs job.json
//
// job.json: {"repeat": N, "max_seconds": S, "models": [{"name", "onnx",
//   "inputs": [{"name", "file", "dtype", "shape"}], "outputs_dir"}]}
// Inputs are raw little-endian buffers; the first run's outputs are written
// back as raw buffers to outputs_dir/<output name>.bin so run.py can check them.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-web";

// numpy writes a bool as one byte, which is how onnxruntime-web holds a bool tensor too.
const TYPED = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array, int8: Int8Array, bool: Uint8Array };

// One thread and no proxy worker: the session runs on this thread, like wasmtime.
ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;
ort.env.logLevel = "error";

function loadTensor(spec) {
  const Typed = TYPED[spec.dtype];
  if (!Typed) throw new Error(`input ${spec.name}: dtype ${spec.dtype} is not supported by bench.mjs`);
  const bytes = readFileSync(spec.file);
  const data = new Typed(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return new ort.Tensor(spec.dtype, data, spec.shape);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function benchModel(model, repeat, maxSeconds) {
  const feeds = Object.fromEntries(model.inputs.map((spec) => [spec.name, loadTensor(spec)]));
  const bytes = readFileSync(model.onnx);

  const t0 = performance.now();
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  const t1 = performance.now();
  const first = await session.run(feeds);
  const t2 = performance.now();

  mkdirSync(model.outputs_dir, { recursive: true });
  const outputs = session.outputNames.map((name) => {
    const file = join(model.outputs_dir, `${name}.bin`);
    const data = first[name].data;
    writeFileSync(file, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return { name, file, dtype: first[name].type, shape: first[name].dims };
  });

  const times = [];
  const start = performance.now();
  for (let i = 0; i < repeat; i++) {
    const a = performance.now();
    await session.run(feeds);
    times.push(performance.now() - a);
    if (times.length >= 3 && performance.now() - start > maxSeconds * 1000) break;
  }
  await session.release();
  return {
    name: model.name,
    session_ms: t1 - t0,
    first_run_ms: t2 - t1,
    startup_ms: t2 - t0,
    median_ms: median(times),
    min_ms: Math.min(...times),
    runs: times.length,
    times,
    outputs,
  };
}

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
// The first session also fetches and compiles onnxruntime's own wasm binary:
// time that once, apart, so each model's start-up is its session alone.
let runtimeLoadMs = null;
if (job.models.length) {
  const t0 = performance.now();
  const warm = await ort.InferenceSession.create(readFileSync(job.models[0].onnx), { executionProviders: ["wasm"] });
  runtimeLoadMs = performance.now() - t0;
  await warm.release();
}
const results = [];
for (const model of job.models) {
  try {
    results.push(await benchModel(model, job.repeat, job.max_seconds));
  } catch (error) {
    results.push({ name: model.name, error: String(error && error.stack ? error.stack : error) });
  }
}
const pkg = JSON.parse(readFileSync(new URL("./node_modules/onnxruntime-web/package.json", import.meta.url), "utf8"));
process.stdout.write(JSON.stringify({ node: process.version, onnxruntime_web: pkg.version, runtime_load_ms: runtimeLoadMs, results }) + "\n");
