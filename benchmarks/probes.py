"""Time the probe suite on one model, and batched generation (left padding, KV cache) against one-at-a-time
generation without the cache.

Run after the pipeline has trained the models: .venv/bin/python benchmarks/probes.py [--model DIR] [--world DIR]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from lvlmu.io import package_versions
from lvlmu.model import load_model
from lvlmu.probe.generate import generate_answers
from lvlmu.probe.suite import ProbeConfig, run_probes
from lvlmu.world import load_world


def answers_per_second(model, processor, world, examples, batch_size: int, use_cache: bool) -> float:
    started = time.perf_counter()
    generate_answers(model, processor, examples, world.image, batch_size=batch_size, progress=False, use_cache=use_cache)
    return len(examples) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="artifacts/models/base")
    parser.add_argument("--world", default="artifacts/world")
    parser.add_argument("--n", type=int, default=128, help="answers to generate in the generation comparison")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(2)
    world = load_world(args.world)
    model, processor = load_model(args.model)
    # The probes' own mixture: identity, fact and description questions on images, and text-only facts.
    examples = [ex for ex in world.examples if ex["split"] == "eval" and ex["kind"] in ("identity", "fact_image", "description", "fact_text")]
    examples = examples[:: max(1, len(examples) // args.n)][: args.n]
    batched = answers_per_second(model, processor, world, examples, batch_size=64, use_cache=True)
    unbatched = answers_per_second(model, processor, world, examples, batch_size=1, use_cache=False)
    print(f"threads: {torch.get_num_threads()}  model: {args.model}  answers: {len(examples)}")
    print(f"batched (64, left padding, KV cache): {batched:7.1f} answers/s")
    print(f"unbatched (1, no cache)             : {unbatched:7.1f} answers/s")
    print(f"speed-up                            : {batched / unbatched:7.1f}x (target: at least 5x)")
    with tempfile.TemporaryDirectory() as results:
        started = time.perf_counter()
        store = run_probes(args.model, world, Path(results) / "probe", ProbeConfig(reference_dir=args.model), progress=False)
        total = time.perf_counter() - started
        per_metric = {name: entry["wall_seconds"] for name, entry in store.data["metrics"].items()}
    for name, seconds in per_metric.items():
        print(f"probe {name:<12}: {seconds:6.1f} s")
    print(f"probe suite total : {total:6.1f} s (model loading included)")
    if args.json:
        Path(args.json).write_text(json.dumps({"batched_answers_per_s": batched, "unbatched_answers_per_s": unbatched,
                                               "speedup": batched / unbatched, "probe_seconds": per_metric, "probe_total": total,
                                               "versions": package_versions()}, indent=1))


if __name__ == "__main__":
    main()
