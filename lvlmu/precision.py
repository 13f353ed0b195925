"""The precision a run computes in, and what a manifest records about the machine that computed it.

bf16 autocast is fast only where the hardware has bf16 arithmetic: a GPU, or a CPU with avx512_bf16 or AMX. On a CPU
with AVX2 alone, PyTorch emulates it: one matmul of pretraining's shape ran 17x slower than in fp32. So "auto" means
bf16 on a GPU that supports it and fp32 on every CPU, also where the CPU could do bf16: the study's numbers then do
not depend on which CPU ran them (the book's re-run page says by how much they still do). bf16 on a CPU is an explicit choice.
torch is imported only when a function needs it, so that the command line can list the precisions before it sets
the instruction-set variables (lvlmu.numerics).
"""
from __future__ import annotations

import os
import warnings

from .numerics import isa_variables

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def check_precision(precision: str) -> None:
    """A config's check: `precision` is one of PRECISIONS (resolved only when a run starts, on its machine)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; the precisions are {list(PRECISIONS)}")


def native_bf16() -> bool:
    """Whether bf16 matmuls run natively here: a GPU that supports bf16, or a CPU with bf16 instructions (avx512_bf16
    or AMX) that oneDNN may use (ONEDNN_MAX_CPU_ISA can forbid them; oneDNN alone also says yes for plain AVX-512)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    has_instructions = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return bool(has_instructions and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, warn: bool = True) -> str:
    """"fp32", "bf16" or "fp16" autocast for a configured precision. "auto": bf16 on a GPU that supports it, else fp32.

    bf16 on a CPU without native bf16 runs, with a warning (it is many times slower than fp32); fp16 needs a GPU, and
    bf16 on a GPU one that has it."""
    import torch

    check_precision(precision)
    on_gpu = torch.cuda.is_available()
    if precision == "auto":
        return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and not on_gpu:
        raise ValueError("fp16 mixed precision needs a GPU; on a CPU use precision='fp32' (or 'bf16' where the CPU has native bf16)")
    if precision == "bf16" and on_gpu and not torch.cuda.is_bf16_supported():
        raise ValueError(f"{torch.cuda.get_device_name()} has no bf16; use precision='fp16' or 'fp32'")
    if precision == "bf16" and warn and not native_bf16():
        held = f"; ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']} forbids its bf16 instructions" if "ONEDNN_MAX_CPU_ISA" in os.environ else ""
        warnings.warn(f"bf16 autocast on a CPU without native bf16 (capability {torch.backends.cpu.get_cpu_capability()}{held}): "
                      "PyTorch emulates it, many times slower than fp32. precision='auto' uses fp32 on CPUs.", stacklevel=2)
    return precision


def autocast_arguments(precision: str) -> dict[str, bool]:
    """transformers.TrainingArguments' bf16 and fp16 flags for a configured precision.

    Under `accelerate launch`, the launch config's mixed_precision reaches the Trainer too (ACCELERATE_MIXED_PRECISION,
    read when both flags are off): one that disagrees with the precision is refused rather than silently obeyed."""
    resolved = resolve_precision(precision)
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launched not in ("no", resolved):
        raise ValueError(f"the accelerate config asks for mixed_precision {launched!r} but this run's precision is {resolved!r} "
                         f"(from {precision!r}); set mixed_precision: \"no\" in the config and choose with --precision")
    return {"bf16": resolved == "bf16", "fp16": resolved == "fp16"}


def runtime(precision: str | None = None) -> dict:
    """Where a result was computed: device, CPU capability, native bf16, torch threads, the resolved precision, and the
    instruction-set variables that were set. Recorded in every manifest beside the package versions."""
    import torch

    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    record = {"device": device, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bf16(),
              "threads": torch.get_num_threads()}
    if precision is not None:
        record["precision"] = resolve_precision(precision, warn=False)
    if variables := isa_variables():
        record["isa_variables"] = variables
    return record


def same_machine_numerics(manifest: dict, precision: str) -> bool:
    """Whether a manifest's result was computed with this run's resolved precision and instruction-set variables,
    so that it can be reused as this run's own."""
    recorded = manifest.get("runtime", {})
    return (recorded.get("precision") == resolve_precision(precision, warn=False)
            and recorded.get("isa_variables", {}) == isa_variables())
