"""Command line: `python -m lvlmu study --profile full`, `python -m lvlmu unlearn ...` (also under `accelerate launch`),
`python -m lvlmu attack ...`, `python -m lvlmu estimate`, `python -m lvlmu example-concept`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lvlmu", description="Run the lvlmu study pipeline and build its book.")
    commands = parser.add_subparsers(dest="command", required=True)
    study = commands.add_parser("study", help="run the study through Snakemake (jobs whose key changed) and build the book")
    study.add_argument("--profile", default="full",
                       help="full (the study, the default), quick (a first look, and what CI runs), or a config file's path")
    study.add_argument("--tune", action="store_true",
                       help="run the tuning instead (`make tune`): every method's candidate settings on the tuning world, then "
                            "the choice, written to the settings file the study reads (workflow/tuned.json)")
    study.add_argument("--force", action="store_true", help="rerun every job, reusing no result, even where its key is unchanged")
    study.add_argument("--no-book", action="store_true", help="run the jobs but do not build the book")
    study.add_argument("--only", default=None, metavar="METHOD",
                       help="run only this method's grid runs (the other runs keep their results), then the chapters")
    study.add_argument("--jobs", type=int, default=2, help="cores for Snakemake (default 2); each job takes its threads' worth")
    study.add_argument("--retry-failed", action="store_true",
                       help="run again the jobs whose runs or chapter failed (a failure is otherwise kept until its key changes)")
    study.add_argument("--dry-run", action="store_true", help="list the jobs that would run, and why, without running them")
    study.add_argument("--kernel", default=None, help="Jupyter kernel for the chapters (default: the registered 'lvlmu' kernel)")
    study.add_argument("--snakemake-profile", default=None, metavar="DIR",
                       help="a Snakemake profile directory, such as profiles/slurm (a Slurm cluster, one GPU per grid run)")
    study.add_argument("--native-isa", action="store_true",
                       help="let PyTorch, oneDNN and MKL use every instruction set of this CPU instead of AVX2 alone: "
                            "the numbers then differ from other CPUs' (the book's re-run page says by how much); "
                            "instruction-set variables set in the shell are always kept")
    task = commands.add_parser("task", help="run one job of the study (what the Snakefile's rules call)")
    task.add_argument("name")
    task.add_argument("--artifacts", default="artifacts", help="where the plan file (lvlmu.job) and the results lie")
    task.add_argument("--key", required=True, help="the job's key as the Snakefile planned it")
    task.add_argument("--fresh", action="store_true", help="reuse no earlier result")
    task.add_argument("--kernel", default=None)
    versions = commands.add_parser("versions", help="check the declared versions of the code against versions.json")
    versions.add_argument("--record", action="store_true", help="write the table (refused while code changed without a version bump)")
    add_unlearn_command(commands)
    from .attack.command import add_attack_command

    add_attack_command(commands)
    estimate = commands.add_parser("estimate", help="print estimated memory and FLOPs of LoRA unlearning for LLaVA-1.5 7B and 13B")
    estimate.add_argument("--json", default=None, help="also write the table to this JSON file")
    concept = commands.add_parser("example-concept", help="write the example concept folder from a built world")
    concept.add_argument("--world", default="artifacts/w1/world", help="a world directory (default: the study's first reporting world)")
    concept.add_argument("--out", default="artifacts/concepts/example", help="where the folder goes")
    args = parser.parse_args(argv)
    if args.command == "unlearn":
        return unlearn_command(args)
    if args.command == "attack":
        from .attack.command import attack_command

        return attack_command(args)
    if args.command == "estimate":
        from .estimate import llava_15_estimates

        table = llava_15_estimates()
        print("Estimates, not measurements (see lvlmu/estimate.py for what they count):")
        print(table[["model", "setting", "weights_gib", "activations_gib", "total_gib", "tflops_per_step"]].round(1).to_string(index=False))
        if args.json:
            table.to_json(args.json, orient="records", indent=1)
        return 0
    if args.command == "example-concept":
        from .adapt import example_concept

        print(f"wrote {example_concept(args.world, args.out)}")
        return 0
    if args.command == "task":
        from .tasks import task_command

        return task_command(args)
    if args.command == "versions":
        return versions_command(args)
    return study_command(args)


def study_command(args) -> int:
    from .numerics import describe_numerics, use_portable_numerics

    held = {} if args.native_isa else use_portable_numerics()  # before torch is imported, here or in any job
    print(f"[lvlmu] {describe_numerics(held)}", flush=True)
    from .engine import run_study

    try:
        report = run_study(args.profile, build=not args.no_book, force=args.force, kernel=args.kernel, jobs_at_once=args.jobs,
                           only=args.only, native_isa=args.native_isa, dry_run=args.dry_run, retry_failed=args.retry_failed,
                           snakemake_profile=args.snakemake_profile, tune=args.tune)
    except (ValueError, FileNotFoundError) as error:
        print(f"[lvlmu] {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        return report["returncode"]
    return 1 if report["failed"] or not report["complete"] else 0


def versions_command(args) -> int:
    from .versions import check, record

    problems = record() if args.record else check()
    for line in problems:
        print(f"[lvlmu] {line}", file=sys.stderr)
    if not problems:
        print("[lvlmu] " + ("recorded lvlmu/versions.json" if args.record else "every unit's version matches its code"))
    return 1 if problems else 0


def add_unlearn_command(commands) -> None:
    from .cli import add_checkpoint_arguments

    unlearn = commands.add_parser("unlearn", help="unlearn a concept folder (or a world's forget split) from a local checkpoint, "
                                  "then probe it; runs under `accelerate launch` for several GPUs")
    add_checkpoint_arguments(unlearn, "a local checkpoint directory (nothing is downloaded)",
                             "autocast in training: auto (bf16 on a GPU, fp32 on a CPU), fp32, bf16 or fp16 (GPU only)")
    unlearn.add_argument("--out", required=True, help="where the unlearned model (and its adapter, with --lora) goes")
    unlearn.add_argument("--method", default="siu")
    unlearn.add_argument("--images", default="single", choices=("single", "trained"))
    unlearn.add_argument("--lora", action="store_true", help="train a LoRA adapter (targets inferred unless --config sets lora_target)")
    unlearn.add_argument("--bf16", action="store_const", const="bf16", dest="precision", help="the same as --precision bf16")
    unlearn.add_argument("--gradient-checkpointing", action="store_true")
    unlearn.add_argument("--config", default="{}", help="any other UnlearnConfig fields, as JSON")
    unlearn.add_argument("--probe", default=None, metavar="RESULTS_DIR", help="probe the unlearned model into this directory")


def unlearn_command(args) -> int:
    import json

    from accelerate import PartialState

    from .probe.suite import ProbeConfig, run_probes
    from .study import from_mapping
    from .cli import load_source
    from .unlearn import UnlearnConfig, unlearn

    try:
        world = load_source(args)
        config = from_mapping(UnlearnConfig, {"method": args.method, "images": args.images, "lora": args.lora, "dtype": args.dtype,
                                              "precision": args.precision, "gradient_checkpointing": args.gradient_checkpointing,
                                              **json.loads(args.config)}, "--config")
        manifest = unlearn(world, args.model, args.out, config)
        if PartialState().is_main_process:
            print(f"[lvlmu] unlearned {config.method} in {manifest['wall_seconds']:.0f} s on {manifest['processes']} process(es), "
                  f"effective batch {manifest['effective_batch_size']}: {args.out}")
            if args.probe:
                run_probes(args.out, world, args.probe, ProbeConfig(chat_template=config.chat_template))
                print(f"[lvlmu] probe results: {args.probe}/summary.json")
    except (ValueError, FileNotFoundError) as error:
        print(f"[lvlmu] {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
