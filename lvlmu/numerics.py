"""Numbers that do not depend on which x86-64 CPU computed them.

PyTorch's own kernels, oneDNN and MKL each pick the widest instructions the CPU has (AVX2, AVX-512, AMX). Wider vectors
sum in another order, so two CPUs give results that differ in the last bits of a float, and a training run turns such
differences into visibly different models. Held to AVX2, which every x86-64 CPU of the last decade has, the same
kernels run everywhere. The study's pipeline and the test suite set these variables before torch is imported, unless
they are already set; the book's re-run page reports what the choice costs and what it changes. torch is not imported here.
"""
from __future__ import annotations

import os
import platform
from collections.abc import Mapping, MutableMapping

# Held to AVX2: PyTorch's vectorised kernels, oneDNN (convolutions, and bf16 matmuls: bf16 is then emulated, so a bf16
# run on a CPU wants --native-isa), and MKL's conditional numerical reproducibility mode (its AVX2 code path on any CPU,
# Intel's included). Each of the first two alone changed the trained vision tower's bits; MKL on an AMD CPU already
# takes its AVX2 path.
PORTABLE_NUMERICS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
# A CPU with AVX2 alone (no AVX-512, no native bf16), as seen from a CPU that has more.
AVX2_EMULATION = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
# Every variable of the kind, recorded in manifests where it is set.
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def has_avx2() -> bool:
    """Whether this is an x86-64 CPU with AVX2 and FMA, read from /proc/cpuinfo. Elsewhere (macOS, Windows, Arm) it
    is not known here and False: numbers there are not held, and the re-run page shows the capability they ran with."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return {"avx2", "fma"} <= set(flags)


def use_portable_numerics(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set PORTABLE_NUMERICS in `environ` on an x86-64 CPU with AVX2, unless one of the ISA variables is already set
    (a choice made by the caller wins, whole: a partly held library would still differ). Returns what it set; call it
    before torch is imported."""
    if not has_avx2() or any(name in environ for name in ISA_VARIABLES):
        return {}
    environ.update(PORTABLE_NUMERICS)
    return dict(PORTABLE_NUMERICS)


def isa_variables(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The instruction-set variables set in `environ` (this process's): they decide the bits of every result."""
    return {name: environ[name] for name in ISA_VARIABLES if name in environ}


def describe_numerics(held: dict[str, str], environ: Mapping[str, str] = os.environ) -> str:
    """One line on the instruction sets a run computes with, for its log."""
    chosen = isa_variables(environ)
    if held:
        return "numbers held to AVX2 (" + ", ".join(f"{k}={v}" for k, v in held.items()) + "); --native-isa lifts it"
    if chosen:
        return "instruction-set variables as the caller set them: " + ", ".join(f"{k}={v}" for k, v in chosen.items())
    return "every instruction set of this CPU in use: numbers may differ from other CPUs' in the last bits"
