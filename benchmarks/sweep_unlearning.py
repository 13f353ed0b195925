"""The hyperparameter sweep behind the grid's per-method choices (lvlmu/unlearn/grid.py), on seed 0.

Each configuration unlearns from the base model and runs the privacy, aftermath and utility probes on the people
it forgot; one line per configuration: name leaks, aftermath shares, retain recognition, over-refusal. The default
sweep is the one the grid's hyperparameters were chosen from; pass --configs with a JSON list of UnlearnConfig
fields to sweep others, e.g. '[{"method": "npo", "learning_rate": 3e-4, "batch_size": 32}]'.

Run after the pipeline has trained the models: .venv/bin/python benchmarks/sweep_unlearning.py [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from lvlmu.probe.suite import ProbeConfig, run_probes
from lvlmu.unlearn import UnlearnConfig, resolve_forget, unlearn_cached
from lvlmu.world import load_world

SPLIT = {"forget": "split", "batch_size": 32}
SINGLE = {"forget": "split:0", "images": "single", "batch_size": 16, "augment_shift": 2}
DEFAULT_SWEEP = [
    *({**SPLIT, "method": "ga", "learning_rate": lr} for lr in (1e-4, 2e-4)),
    *({**SPLIT, "method": m, "learning_rate": lr, "weights": {"retain": w}}
      for m in ("graddiff", "npo") for lr, w in ((2e-4, 1.0), (3e-4, 1.0), (2e-4, 5.0), (3e-4, 5.0), (4e-4, 5.0), (6e-4, 5.0))),
    *({**SPLIT, "method": "kl", "learning_rate": lr, "weights": {"retain": 5.0}} for lr in (4e-4, 6e-4)),
    *({**SPLIT, "method": "idk", "learning_rate": lr} for lr in (3e-4, 6e-4)),
    *({**SPLIT, "method": "dpo", "learning_rate": lr} for lr in (2e-3, 4e-3)),
    *({**SPLIT, "method": "siu", "learning_rate": lr, "target_repeats": 1, "other_qa": 128} for lr in (6e-4, 1.5e-3, 2e-3, 3e-3)),
    *({**SPLIT, "method": "random", "learning_rate": 6e-4},),
    *({**SPLIT, "method": "pubg", "learning_rate": lr, "weights": {"suppress": s, "retain": r}}
      for lr, s, r in ((6e-4, 0.1, 1.0), (1e-3, 0.1, 1.0), (6e-4, 0.1, 2.0), (8e-4, 0.1, 3.0), (6e-4, 0.1, 5.0), (6e-4, 0.3, 2.0),
                       (6e-4, 1.0, 2.0), (4e-4, 0.3, 1.5), (6e-4, 0.0, 1.0), (6e-4, 0.0, 2.0), (1e-3, 0.0, 2.0))),
    *({**SINGLE, "method": "siu", "forget": f"split:{k}", "learning_rate": 6e-4, "target_repeats": r, "other_qa": q}
      for r, q in ((1, 8), (1, 32), (3, 32)) for k in range(4)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="artifacts/world")
    parser.add_argument("--base", default="artifacts/models/base")
    parser.add_argument("--out", default="artifacts/sweep", help="where the swept models and their probes go (reused when unchanged)")
    parser.add_argument("--configs", default=None, help="a JSON list of UnlearnConfig fields (default: the grid's sweep)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    world = load_world(args.world)
    for fields in json.loads(args.configs) if args.configs else DEFAULT_SWEEP:
        config = UnlearnConfig(**fields)
        name = re.sub(r"[^A-Za-z0-9_.:-]+", "_", "-".join(f"{k}={v}" for k, v in fields.items())).replace(":", "")
        unlearn_cached(world, args.base, Path(args.out) / "models" / name, config, progress_bar=False)
        people = () if config.forget == "split" else tuple(resolve_forget(world, config.forget))
        probes = ProbeConfig(metrics=("privacy", "aftermath", "utility"), perturbations=(), forget_people=people)
        store = run_probes(Path(args.out) / "models" / name, world, Path(args.out) / "probes" / name, probes, progress=False, replace_stale=True)
        p, u = store.summary("privacy"), store.summary("utility")
        lines = [f"{name}\n    leak unseen {p['unseen images']['name leak']:.2f} held-out {p['held-out paraphrases']['name leak']:.2f}"
                 f" | retain names {u['retain names']['accuracy']:.2f} facts {u['retain facts']['accuracy']:.2f} VQA {u['visual QA']['accuracy']:.2f}"
                 f" | over-refusal retain {u['over-refusal']['retain people']:.2f} general {u['over-refusal']['general questions']:.2f}"]
        for condition, a in store.summary("aftermath").items():
            lines.append(f"    {condition:>10}: desirable {a['desirable']:.2f} leak {a['leak']:.2f} | "
                         + " ".join(f"{k[:4]} {a[k]:.2f}" for k in ("degenerate", "hallucinated", "informative", "refusal", "other"))
                         + f" | grounding precision {a['grounding precision'] or 0:.2f} recall {a['grounding recall']:.2f}")
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
