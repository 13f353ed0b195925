"""`python -m lvlmu attack`: the attacks on one checkpoint and a concept folder (or a world), with a reference model
(a model that never saw the concepts) as the calibration."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_attack_command(commands) -> None:
    from ..cli import add_checkpoint_arguments

    attack = commands.add_parser("attack", help="try to bring forgotten concepts back (relearning, quantization, logit lens), "
                                 "calibrated by a reference model that never saw them")
    add_checkpoint_arguments(attack, "the unlearned checkpoint (a local directory)", "autocast while relearning")
    attack.add_argument("--reference", default=None, help="a model that never saw the concepts (the oracle), attacked the same way")
    attack.add_argument("--out", required=True, help="where the attack results go (one folder per model)")
    attack.add_argument("--attacks", default="", help="comma-separated attacks (default: all)")
    attack.add_argument("--learning-rate", type=float, default=None,
                        help="the relearning rate (default: a tenth of the model's own pretraining rate, from its lvlmu records; "
                             "a checkpoint lvlmu did not make needs one)")
    attack.add_argument("--lora", action="store_true", help="relearn through a LoRA adapter on the language model")
    attack.add_argument("--config", default="{}", help="any other AttackConfig fields, as JSON")


def attack_command(args) -> int:
    from ..report.attacks import ATTACK_AXES, attack_table
    from ..cli import load_source
    from ..study import from_mapping
    from .suite import ATTACKS, AttackConfig, run_attacks

    try:
        world = load_source(args)
        config = from_mapping(AttackConfig, {"attacks": [a.strip() for a in args.attacks.split(",") if a.strip()],
                                             "learning_rate": args.learning_rate, "lora": args.lora, "dtype": args.dtype,
                                             "precision": args.precision, **json.loads(args.config)}, "--config")
        print(f"[lvlmu] {unlearned_note(args.model)}")
        models = {"model": args.model, **({"reference": args.reference} if args.reference else {})}
        stores = {label: run_attacks(path, world, Path(args.out) / label, config) for label, path in models.items()}
    except (ValueError, FileNotFoundError) as error:
        print(f"[lvlmu] {error}", file=sys.stderr)
        return 1
    if not args.reference:
        print("[lvlmu] no --reference: the leaks below are what the attacks recover, not the excess over a model that never saw "
              "the concepts (some of it an attack teaches anyone: pass a reference to separate the two)")
    for name in config.attacks or ATTACKS:
        summary = stores["model"].summary(name)
        if "note" in summary:
            print(f"[lvlmu] {summary['note']}")
        if "unavailable" in summary:
            print(f"\n{name}: unavailable, {summary['unavailable']}")
            continue
        if name not in ATTACK_AXES:
            print(f"\n{name}: {json.dumps({k: v for k, v in summary.items() if k != 'note'})}")
            continue
        table = attack_table(stores, name, "reference" if args.reference else None)
        print(f"\n{name} (leak rates):\n{table.round(3).to_string()}")
    print(f"\n[lvlmu] results: {', '.join(f'{s.directory}/summary.json' for s in stores.values())}")
    return 0


def unlearned_note(model_dir: str) -> str:
    """What the attacks on this model can report: recovery of what unlearning removed, or of what it knows."""
    manifest = Path(model_dir) / "manifest.json"
    kind = json.loads(manifest.read_text()).get("kind") if manifest.exists() else None
    if kind == "unlearn":
        return f"{model_dir} was unlearned by lvlmu: the attacks measure what comes back"
    if kind is None:
        return (f"{model_dir} has no lvlmu record: if it was unlearned elsewhere, the attacks measure what comes back; "
                "if it never was, they measure what it knows")
    return f"{model_dir} was never unlearned (a {kind} model): the attacks measure what it knows, not what comes back"
