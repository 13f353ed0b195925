"""Do two builds of the study hold the same numbers? Compares two book directories (say, one built before a change
to the engine and one after, in the same venv): the world's files (less world.json, whose fingerprint is a key),
every model's weights, and every figure of every model's probe results, which the chapters are computed from, plus
the pretraining chapter's recall samples.

    python benchmarks/same_numbers.py /tmp/before /tmp/after [--json benchmarks/results/same-numbers-quick.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cross_cpu import compare  # noqa: E402


def world_files_hash(world: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in world.rglob("*") if p.is_file() and p.name != "world.json"):
        digest.update(path.relative_to(world).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="also write the comparison here")
    args = parser.parse_args()
    result = compare(args.before, args.after)
    result["world_identical"] = world_files_hash(args.before / "artifacts" / "world") == world_files_hash(args.after / "artifacts" / "world")
    recall = {name: (args.before / "artifacts" / "results" / name).read_bytes() == (args.after / "artifacts" / "results" / name).read_bytes()
              for name in ("recall_base.jsonl", "recall_oracle.jsonl")}
    result["recall_samples_identical"] = recall
    print(f"world identical (less world.json): {result['world_identical']}")
    print(f"models bit-identical: {result['models_identical']} of {result['models_compared']} "
          f"(largest weight difference {result['largest_weight_difference']:.3g})")
    print(f"probe figures: {result['figures_differing']} of {result['figures_compared']} differ"
          + (f", the largest at {result['largest_difference_at']}" if result["figures_differing"] else ""))
    print("by metric: " + ", ".join(f"{m} {e['figures'] - e['differing']}/{e['figures']} equal" for m, e in result["by_metric"].items()))
    print(f"recall samples identical: {recall}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
