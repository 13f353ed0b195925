"""The cost of each unlearning method against retraining the oracle: seconds and peak memory per forgotten person.

Each method of the study grid runs once (seed 0) with its grid hyperparameters, on the forget split and, for the
single-image methods, on one person from one photograph. The oracle's cost is its own recorded training time (its
manifest), which is what exact unlearning by retraining costs.

Run after the pipeline has trained the models: .venv/bin/python benchmarks/unlearning.py [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from lvlmu.io import package_versions
from lvlmu.unlearn import unlearn
from lvlmu.study import StudyConfig, tuned
from lvlmu.unlearn.grid import UnlearnGrid
from lvlmu.world import load_world


def run_alone(world_dir: str, base_dir: str, out_dir: str, config) -> dict:
    """One run in a fresh process, so that its peak memory (the process's peak resident set on a CPU) is its own;
    also the process's peak before the run (libraries and world loaded), to tell what the run itself adds."""
    import contextlib
    import io

    from lvlmu.training import peak_memory_mb

    torch.set_num_threads(2)
    world = load_world(world_dir)
    before = peak_memory_mb()
    with contextlib.redirect_stdout(io.StringIO()):  # the run's own progress lines
        manifest = unlearn(world, base_dir, out_dir, config, progress_bar=False)
    return {**manifest, "baseline_memory_mb": before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", default="artifacts/world")
    parser.add_argument("--base", default="artifacts/models/base")
    parser.add_argument("--oracle", default="artifacts/models/oracle")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(2)
    oracle = json.loads((Path(args.oracle) / "manifest.json").read_text())
    # The study's grid at its tuned settings (workflow/tuned.json), each method once per setting: no ablations or curve.
    grid = tuned(StudyConfig(unlearn=UnlearnGrid(seeds=(0,), single_people=1, single_variants={}, curve_methods=()))).unlearn
    runs = grid.runs()
    rows = []
    print(f"oracle retrain: {oracle['wall_seconds']:.0f} s, {oracle['steps']} steps, peak {oracle.get('peak_memory_mb', float('nan')):.0f} MB")
    print(f"{'run':32s} {'people':>6s} {'steps':>5s} {'batch':>5s} {'s/person':>9s} {'MB peak':>8s} {'MB added':>8s} {'x oracle':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                manifest = pool.submit(run_alone, args.world, args.base, str(Path(tmp) / run.name), run.config).result()
            people = len(manifest["forget_people"])
            row = {"run": run.name, "people": people, "steps": run.config.steps, "effective batch size": manifest["effective_batch_size"],
                   "seconds per person": manifest["wall_seconds"] / people, "peak memory (MB)": manifest["peak_memory_mb"],
                   "memory added by the run (MB)": manifest["peak_memory_mb"] - manifest["baseline_memory_mb"],
                   "ratio to oracle retrain": manifest["wall_seconds"] / people / oracle["wall_seconds"]}
            rows.append(row)
            print(f"{run.name:32s} {people:6d} {row['steps']:5d} {row['effective batch size']:5d} {row['seconds per person']:9.2f} "
                  f"{row['peak memory (MB)']:8.0f} {row['memory added by the run (MB)']:8.0f} {row['ratio to oracle retrain']:9.4f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"oracle_seconds": oracle["wall_seconds"], "runs": rows, "versions": package_versions()}, indent=1))


if __name__ == "__main__":
    main()
