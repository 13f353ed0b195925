"""Throughput of every path that trains or probes the tiny models, in fp32 and under bf16 autocast, on one thread.

For each path (vision tower pretraining, LLaVA pretraining, NPO on the forget split, SIU from one image, probe
generation) it runs the real lvlmu code for a few steps on the quick profile's world and reports:
- ms per step (the median of the timed forward-and-backward calls after a warm-up step; generation: per batch);
- the bf16/fp32 time ratio (above 1: bf16 is slower here);
- FLOPs per step, counted by torch.utils.flop_counter (matmuls, convolutions and attention, forward and backward:
  2mnk per m-by-k times k-by-n product; elementwise work is not counted);
- the achieved FLOP/s, and its share of this machine's one-thread fp32 matmul rate (a 1024x1024 product);
- the frozen vision tower's share of the step (its forward, timed by hooks).

Models have random weights: the shapes, and so the cost, are those of the study's (generation always runs to
max_new_tokens, an upper bound on the trained models' cost).

    .venv/bin/python benchmarks/throughput.py                 # this CPU
    .venv/bin/python benchmarks/throughput.py --emulate-avx2  # as a CPU with AVX2 only (no native bf16)
    .venv/bin/python benchmarks/throughput.py --json benchmarks/results/throughput-avx512.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

from lvlmu.numerics import AVX2_EMULATION

PATHS = ("vision", "pretrain", "unlearn-npo", "unlearn-siu", "generate")


class StepMeter:
    """Times every other Trainer.training_step (forward and backward) and the frozen vision tower's forward inside it,
    and counts the FLOPs of the steps in between (counting slows a step, and batches differ: both are averaged)."""

    def __init__(self):
        self.seconds, self.tower_seconds, self.flops = [], [], []

    @contextlib.contextmanager
    def measuring(self):
        from torch.utils.flop_counter import FlopCounterMode
        from transformers import CLIPVisionModel, Trainer

        step, tower = Trainer.training_step, CLIPVisionModel.forward
        meter, in_tower = self, []

        def timed_step(trainer, *args, **kwargs):
            counting = len(meter.flops) <= len(meter.seconds)
            counter = FlopCounterMode(display=False) if counting else contextlib.nullcontext()
            in_tower.clear()
            started = time.perf_counter()
            with counter:
                out = step(trainer, *args, **kwargs)
            if counting:
                meter.flops.append(counter.get_total_flops())
            else:
                meter.seconds.append(time.perf_counter() - started)
                meter.tower_seconds.append(sum(in_tower))
            return out

        def timed_tower(module, *args, **kwargs):
            started = time.perf_counter()
            out = tower(module, *args, **kwargs)
            if not any(p.requires_grad for p in module.parameters()):  # a frozen tower: LLaVA's, not vision pretraining's
                in_tower.append(time.perf_counter() - started)
            return out

        Trainer.training_step, CLIPVisionModel.forward = timed_step, timed_tower
        try:
            yield self
        finally:
            Trainer.training_step, CLIPVisionModel.forward = step, tower

    def result(self) -> dict:
        timed = self.seconds[1:]  # the first timed step still warms up
        seconds, flops = statistics.median(timed), statistics.mean(self.flops)
        return {"ms_per_step": 1e3 * seconds, "flops_per_step": flops, "gflops_per_s": flops / seconds / 1e9,
                "tower_share": statistics.median(t / s for t, s in zip(self.tower_seconds[1:], timed)), "steps_timed": len(timed)}


def matmul_rate(size: int = 1024, repeats: int = 10) -> float:
    """One-thread fp32 matmul rate in FLOP/s: the best of `repeats` size^3 products."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def build_inputs(out: Path):
    """The quick profile's world, a random vision tower and a random base model saved as the study saves them."""
    import torch
    from transformers import CLIPVisionModel

    from lvlmu.model import build_processor, build_tiny_model, get_preset, save_model, vision_tower_config
    from lvlmu.model.tokenizer import train_tokenizer
    from lvlmu.pretrain import world_corpus
    from lvlmu.study import get_profile
    from lvlmu.world import build_world

    config = get_profile("quick")
    world = build_world(config.world, out / "world", progress=False)
    spec = get_preset(config.pretrain.preset)
    torch.manual_seed(0)
    CLIPVisionModel(vision_tower_config(spec, world.config.image_size)).save_pretrained(out / "vision")
    processor = build_processor(train_tokenizer(world_corpus(world), spec.vocab_size), world.config.image_size, spec.patch_size)
    save_model(build_tiny_model(spec, processor, world.config.image_size), processor, out / "base")
    return config, world


@contextlib.contextmanager
def quiet():
    """The runs' own printing, silenced."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def run_path(path: str, precision: str, steps: int, config, world, out: Path) -> dict:
    """`steps` steps of one path at one precision; the StepMeter's figures."""
    import torch

    from lvlmu.model import load_model
    from lvlmu.pretrain import pretrain, training_examples
    from lvlmu.probe.generate import generate_answers
    from lvlmu.study import tuned
    from lvlmu.unlearn import UnlearnConfig, unlearn
    from lvlmu.vision import pretrain_vision, vision_examples

    meter, work = StepMeter(), out / f"{path}-{precision}"
    if path == "vision":
        epochs = (steps + 2) * config.vision.batch_size / len(vision_examples(world))
        with meter.measuring(), quiet():
            pretrain_vision(world, work, replace(config.vision, epochs=epochs, threads=1, precision=precision), progress_bar=False)
    elif path == "pretrain":
        epochs = (steps + 2) * config.pretrain.batch_size / len(training_examples(world, config.pretrain))
        with meter.measuring(), quiet():
            pretrain(world, work, replace(config.pretrain, epochs=epochs, precision=precision), vision_dir=out / "vision", progress_bar=False)
    elif path.startswith("unlearn"):
        grid = tuned(config).unlearn  # the study's tuned settings
        run = next(r for r in grid.runs() if r.label == path.split("-")[1] and r.setting == ("split" if path.endswith("npo") else "single"))
        with meter.measuring(), quiet():
            unlearn(world, out / "base", work, replace(run.config, steps=steps + 2, precision=precision, threads=1), progress_bar=False)
    else:  # greedy generation of the probes' answers, batch 64, 48 new tokens
        model, processor = load_model(out / "base", dtype="fp32")
        examples = world.select("eval", role="forget")[:64] * (steps + 2)
        times = []
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            for start in range(0, len(examples), 64):
                began = time.perf_counter()
                generate_answers(model, processor, examples[start : start + 64], world.image, batch_size=64, progress=False)
                times.append(time.perf_counter() - began)
        return {"ms_per_step": 1e3 * statistics.median(times[2:]), "steps_timed": len(times) - 2}
    return meter.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulate-avx2", action="store_true", help="rerun this script with " + " ".join(f"{k}={v}" for k, v in AVX2_EMULATION.items()))
    parser.add_argument("--steps", type=int, default=24, help="steps per path in fp32, half timed and half counted (bf16 on a CPU without native bf16: a third)")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.emulate_avx2 and any(os.environ.get(k) != v for k, v in AVX2_EMULATION.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_EMULATION})

    import torch
    import transformers

    from lvlmu.io import package_versions
    from lvlmu.precision import native_bf16, runtime

    warnings.filterwarnings("ignore")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)
    rate = matmul_rate()
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16()}, one thread")
    print(f"fp32 matmul rate (1024^3, one thread): {rate / 1e9:.1f} GFLOP/s")
    rows = []
    with tempfile.TemporaryDirectory(prefix="lvlmu-throughput-") as tmp:
        config, world = build_inputs(Path(tmp))
        print(f"{'path':12s} {'fp32 ms':>9s} {'bf16 ms':>9s} {'bf16/fp32':>9s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'of matmul':>9s} {'tower':>6s}")
        for path in args.paths:
            row = {"path": path}
            for precision in ("fp32", "bf16"):
                steps = args.steps if precision == "fp32" or native_bf16() else max(3, args.steps // 3)
                row[precision] = run_path(path, precision, steps, config, world, Path(tmp))
            fp32 = row["fp32"]
            row["bf16_over_fp32"] = row["bf16"]["ms_per_step"] / fp32["ms_per_step"]
            if "gflops_per_s" in fp32:
                row["share_of_matmul_rate"] = fp32["gflops_per_s"] * 1e9 / rate
            rows.append(row)
            flops = (f"{fp32['flops_per_step'] / 1e9:10.2f} {fp32['gflops_per_s']:8.1f} {row['share_of_matmul_rate']:9.0%} {fp32['tower_share']:6.1%}"
                     if "gflops_per_s" in fp32 else "")
            print(f"{path:12s} {fp32['ms_per_step']:9.0f} {row['bf16']['ms_per_step']:9.0f} {row['bf16_over_fp32']:9.2f} {flops}", flush=True)
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True).stdout.strip()
        record = {"date": time.strftime("%Y-%m-%d"), "commit": commit, "runtime": runtime(), "matmul_gflops_per_s": rate / 1e9, "paths": rows,
                  "versions": package_versions()}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
        print(f"recorded in {args.json}")


if __name__ == "__main__":
    main()
