"""Time the foundation at its defaults: world generation, vision tower pretraining, and the base and oracle pretrainings.

The budget is 15 minutes on a 2-core CPU. Run: .venv/bin/python benchmarks/foundation.py [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from lvlmu.io import package_versions
from lvlmu.pretrain import pretrain
from lvlmu.study import get_profile
from lvlmu.vision import pretrain_vision
from lvlmu.world import build_world

BUDGET_SECONDS = 15 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--out", default=None, help="keep the world and models here (default: a temporary directory)")
    parser.add_argument("--json", default=None, help="also write the timings to this JSON file")
    args = parser.parse_args()
    config = get_profile(args.profile)
    out = Path(args.out or tempfile.mkdtemp(prefix="lvlmu-bench-"))
    timings = {}
    started = time.perf_counter()
    world = build_world(config.world, out / "world", progress=False)
    timings["world"] = time.perf_counter() - started
    t0 = time.perf_counter()
    timings["vision_steps"] = pretrain_vision(world, out / "vision", config.vision, progress_bar=False)["steps"]
    timings["vision"] = time.perf_counter() - t0
    for name, roles in (("base", ()), ("oracle", ("forget",))):
        t0 = time.perf_counter()
        manifest = pretrain(world, out / name, replace(config.pretrain, exclude_roles=roles), vision_dir=out / "vision", progress_bar=False)
        timings[name] = time.perf_counter() - t0
        timings[f"{name}_steps"] = manifest["steps"]
    total = timings["world"] + timings["vision"] + timings["base"] + timings["oracle"]
    print(f"threads: {torch.get_num_threads()}  profile: {args.profile}")
    print(f"world generation : {timings['world']:7.1f} s")
    for name in ("vision", "base", "oracle"):
        print(f"{name:<6} pretraining: {timings[name]:7.1f} s  ({timings[f'{name}_steps']} steps, {timings[name] / timings[f'{name}_steps'] * 1000:.0f} ms/step)")
    print(f"total            : {total:7.1f} s  = {total / BUDGET_SECONDS:.2f} of the 15-minute budget")
    if args.json:
        Path(args.json).write_text(json.dumps({"timings": timings, "total": total, "budget": BUDGET_SECONDS, "versions": package_versions()}, indent=1))


if __name__ == "__main__":
    main()
