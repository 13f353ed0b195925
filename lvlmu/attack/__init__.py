"""Attacks: can forgotten knowledge be brought back? Relearning on a named photo, on benign or unrelated data,
quantization, and a logit lens over the layers; each run on the oracle too, whose recovery is the calibration.

suite (the registered attacks, run_attacks), relearn, quantize, lens; the excess over the oracle is computed in
lvlmu.report.attacks.
"""
from .suite import ATTACKS, AttackConfig, run_attacks

__all__ = ["ATTACKS", "AttackConfig", "run_attacks"]
