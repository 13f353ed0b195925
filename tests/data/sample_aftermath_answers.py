"""Draw the aftermath classifier's frozen test set from a built study's own answers (run once; its output is committed).

    .venv/bin/python tests/data/sample_aftermath_answers.py ARTIFACTS_WORLD_DIR PROBES_DIR [PROBES_DIR ...] --out FILE

Reads the privacy probes' answers (identity, paraphrased, jailbreak and fact questions on forget people's photographs)
of every model under the given probe directories, and draws answers stratified by model and by the classifier's label
(at most --per-cell of each, distinct answers only), so that rare classes are represented. The file it writes holds each
answer with the person it is about and an empty "label": the labels are written by hand, blind to the classifier, by
the guide in the probe chapter. The classifier's labels are used only to stratify and are not written.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from lvlmu.probe.aftermath import classify
from lvlmu.probe.store import ProbeStore
from lvlmu.world import load_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world")
    parser.add_argument("probes", nargs="+", help="directories whose subdirectories are probe results (one per model)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-cell", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    world, rng = load_world(args.world), random.Random(args.seed)
    cells: dict[tuple[str, str], list[dict]] = {}
    seen = set()
    for root in map(Path, args.probes):
        for results in sorted(p for p in root.iterdir() if (p / "summary.json").exists()):
            store = ProbeStore.read(results)
            if not store.has_metric("privacy"):
                continue
            model = results.name
            for row in store.samples("privacy"):
                if row["answer"] in seen:
                    continue
                seen.add(row["answer"])
                person = world.people[row["person_id"]]
                label = classify(row["answer"], person, grammar=True).label
                cells.setdefault((model.split("-lr")[0], label), []).append({"answer": row["answer"], "person_id": person.person_id,
                                                                             "question": row["question"], "model": model})
    drawn = [item for key in sorted(cells) for item in rng.sample(cells[key], min(args.per_cell, len(cells[key])))]
    rng.shuffle(drawn)
    with open(args.out, "w") as out:
        for item in drawn:
            person = world.people[item["person_id"]]
            out.write(json.dumps({**item, "role": person.role, "first_name": person.first_name,
                                  "last_name": person.last_name, "traits": person.traits.known, "facts": person.facts, "label": ""}) + "\n")
    print(f"{len(drawn)} answers from {len(cells)} (model, label) cells -> {args.out}")


if __name__ == "__main__":
    main()
