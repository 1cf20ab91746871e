"""C drivers that time code inside a wasm module, and linking them into reactors.

A call from Python into a wasmtime export costs tens of microseconds, so whatever is
timed is timed inside the module: a small C driver, rendered from
``codegen/templates/drivers/``, reads the WASI monotonic clock (``_clock.c.j2``, shared by
all of them) around the calls and is linked into a WASI reactor.

- `KERNEL_TIMER` (`wasm-build tune`): ``wbt_time`` calls one candidate kernel a number of
  times; linked with the kernel's object and the runtime shim (`link_with_kernel`).
- `PROFILE` (`wasm-build profile`): replaces the runtime's weak ``wb_call_kernel`` to time
  every kernel call of a model's run; linked with the model's ``libNAME.a`` (`link_with_model`).
- `RUN_TIMER` (``bench/``): ``wbbench_loop`` calls ``NAME_run`` n times and times each run;
  linked with the model's ``libNAME.a`` (`link_with_model`).
- `RUN_DIMS_TIMER` (``bench/dims.py``): ``wbbench_loop_dims``, the same loop over
  ``NAME_run_dims`` for a model with symbolic dimensions.
- `PEAK` (`wasm.peak`): the machine's SIMD128 multiply-add rate and in-cache bandwidth, alone.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..artifact.assemble import RUNTIME_DIR, api_exports
from ..artifact.toolchain import Toolchain
from ..codegen.templating import render


@dataclass(frozen=True)
class Driver:
    """One driver template and the functions a reactor exports for the host to call it."""

    template: str  # in codegen/templates/drivers/
    exports: tuple[str, ...]

    def source(self, **context: Any) -> str:
        return render(f"drivers/{self.template}", context)

    def compile(self, toolchain: Toolchain, output: Path, flags: Sequence[str] = (), **context: Any) -> Path:
        """Render the driver into ``output`` with a ``.c`` suffix and compile it into ``output``."""
        source = output.with_suffix(".c")
        source.write_text(self.source(**context))
        toolchain.compile_c(source, output, ["-O2", f"-I{RUNTIME_DIR}", *flags])
        return output


# The host lays a kernel's arguments out in linear memory, hence the allocator.
KERNEL_TIMER = Driver("kernel_timer.c.j2", ("wbt_time", "wbt_error", "malloc", "free"))
PROFILE = Driver("profile.c.j2", ("wb_profile_begin_run", "wb_profile_count", "wb_profile_name", "wb_profile_ms"))
RUN_TIMER = Driver("run_timer.c.j2", ("wbbench_loop",))
RUN_DIMS_TIMER = Driver("run_dims_timer.c.j2", ("wbbench_loop_dims",))
PEAK = Driver("peak.c.j2", ("wb_peak_macs", "wb_peak_copy"))


def compile_kernel_timer(toolchain: Toolchain, work: Path, kernel: str, flags: Sequence[str] = ()) -> list[Path]:
    """`KERNEL_TIMER` calling the kernel symbol ``__tvm_ffi_<kernel>``, and the runtime shim,
    compiled into `work` with the same flags: the objects every candidate links with."""
    timer = KERNEL_TIMER.compile(toolchain, work / "driver.o", flags, kernel=kernel)
    runtime = work / "runtime.o"
    toolchain.compile_c(RUNTIME_DIR / "wasm_build_runtime.c", runtime, ["-O2", f"-I{RUNTIME_DIR}", *flags])
    return [timer, runtime]


def link_with_kernel(toolchain: Toolchain, kernel_object: Path, timer_objects: Sequence[Path], output: Path) -> Path:
    """A reactor at ``output`` of one kernel's object and `compile_kernel_timer`'s objects."""
    toolchain.link_reactor([kernel_object, *timer_objects], output, KERNEL_TIMER.exports)
    return output


def link_with_model(
    toolchain: Toolchain,
    driver: Driver,
    directory: Path,
    manifest: dict[str, Any],
    output: Path,
    flags: Sequence[str] = (),
) -> Path:
    """Compile `driver` for the model built into ``directory`` (``OUT/NAME/``, described by
    ``manifest``) and link it with ``libNAME.a`` into a reactor at ``output`` that exports
    the model's C API and the driver's functions."""
    name = manifest["name"]
    with tempfile.TemporaryDirectory(prefix="wasm-build-driver-") as tmp:
        driver_object = driver.compile(toolchain, Path(tmp) / f"{name}_driver.o", flags, name=name)
        exports = [*api_exports(name, manifest["weights"]["mode"], bool(manifest.get("dims"))), *driver.exports]
        toolchain.link_reactor([driver_object, directory / f"lib{name}.a"], output, exports)
    return output
