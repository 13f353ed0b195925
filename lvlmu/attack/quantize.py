"""Quantization attack: the language model's linear weights rounded to int8 or int4 (weight-only, as a model is
shrunk for deployment), then the leaks read again. Zhang et al. (ICLR 2025) found that 4-bit quantization brings back
most of what unlearning with a small learning rate "removed": the change unlearning made lies under the rounding step.

torchao, PyTorch's own quantization library, does the rounding: it is maintained with PyTorch, runs its weight-only
schemes on a CPU, and quantizes any `nn.Linear` in place, whatever the architecture. int8 has one scale per output
row; int4 one per group of `group_size` input weights (the usual 4-bit layout of GPTQ and AWQ checkpoints, without
their calibration: plain round-to-nearest, the attacker's cheapest step).
"""
from __future__ import annotations

import torch

from ..model.build import language_model_name


def quantization_config(scheme: str, group_size: int):
    from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup

    if scheme == "int8":
        return Int8WeightOnlyConfig()
    if scheme == "int4":
        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(group_size))
    raise ValueError(f"unknown quantization {scheme!r}; choose int8 or int4")


def quantized(model, scheme: str, group_size: int = 32) -> tuple[object, int]:
    """The model with its language model's linear layers quantized in place (`model` itself is changed), and how
    many layers were. A layer whose input width `group_size` does not divide keeps its weights (int4 only)."""
    from torchao.quantization import quantize_

    prefix = language_model_name(model) + "."
    chosen = []

    def take(module, name: str) -> bool:
        keep = isinstance(module, torch.nn.Linear) and name.startswith(prefix) and (scheme != "int4" or module.in_features % group_size == 0)
        if keep:
            chosen.append(name)
        return keep

    quantize_(model, quantization_config(scheme, group_size), filter_fn=take)
    if not chosen:
        raise ValueError(f"no linear layer of the language model {prefix[:-1]!r} could be quantized to {scheme}")
    return model.eval(), len(chosen)
