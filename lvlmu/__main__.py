"""Command line: `python -m lvlmu study --profile full`, `python -m lvlmu unlearn ...` (also under `accelerate launch`),
`python -m lvlmu estimate`, `python -m lvlmu example-concept`."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lvlmu", description="Run the lvlmu study pipeline and build its book.")
    commands = parser.add_subparsers(dest="command", required=True)
    study = commands.add_parser("study", help="run the notebooks (skipping unchanged ones) and build the book")
    study.add_argument("--profile", default="full", help="full (the study, the default) or quick (a first look, and what CI runs)")
    study.add_argument("--force", action="store_true", help="rerun every notebook even when its inputs are unchanged")
    study.add_argument("--no-book", action="store_true", help="run the notebooks but do not build the book")
    study.add_argument("--only", default=None, metavar="METHOD",
                       help="run only this method's grid runs (the other runs keep their results), then the chapters")
    study.add_argument("--jobs", type=int, default=None, help="notebooks at once where their needs allow (default: the profile's, 2)")
    study.add_argument("--kernel", default=None, help="Jupyter kernel for papermill (default: the registered 'lvlmu' kernel)")
    study.add_argument("--native-isa", action="store_true",
                       help="let PyTorch, oneDNN and MKL use every instruction set of this CPU instead of AVX2 alone: "
                            "the numbers then differ from other CPUs' (the book's re-run page says by how much); "
                            "instruction-set variables set in the shell are always kept")
    add_unlearn_command(commands)
    estimate = commands.add_parser("estimate", help="print estimated memory and FLOPs of LoRA unlearning for LLaVA-1.5 7B and 13B")
    estimate.add_argument("--json", default=None, help="also write the table to this JSON file")
    concept = commands.add_parser("example-concept", help="write the example concept folder from a built world")
    concept.add_argument("--world", default="artifacts/world", help="a world directory (default: the study's)")
    concept.add_argument("--out", default="artifacts/concepts/example", help="where the folder goes")
    args = parser.parse_args(argv)
    if args.command == "unlearn":
        return unlearn_command(args)
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

    from .numerics import describe_numerics, use_portable_numerics

    held = {} if args.native_isa else use_portable_numerics()  # before torch is imported, here or in the notebooks' kernels
    print(f"[lvlmu] {describe_numerics(held)}", flush=True)
    from .study import PROFILES, run_study

    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}; choose from {sorted(PROFILES)}")
    # Stream each notebook's output (training progress included) and papermill's cell progress bar.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.INFO)
    try:
        report = run_study(args.profile, build=not args.no_book, force=args.force, kernel=args.kernel, stream_output=True,
                           jobs=args.jobs, only=args.only)
    except (RuntimeError, ValueError) as error:
        print(f"[lvlmu] {error}", file=sys.stderr)
        return 1
    return 1 if report["failed"] else 0


def add_unlearn_command(commands) -> None:
    from .precision import PRECISIONS

    unlearn = commands.add_parser("unlearn", help="unlearn a concept folder (or a world's forget split) from a local checkpoint, "
                                  "then probe it; runs under `accelerate launch` for several GPUs")
    unlearn.add_argument("--model", required=True, help="a local checkpoint directory (nothing is downloaded)")
    source = unlearn.add_mutually_exclusive_group(required=True)
    source.add_argument("--concepts", help="a concept folder (see lvlmu.world.concepts)")
    source.add_argument("--world", help="a world directory built by lvlmu")
    unlearn.add_argument("--out", required=True, help="where the unlearned model (and its adapter, with --lora) goes")
    unlearn.add_argument("--method", default="siu")
    unlearn.add_argument("--images", default="single", choices=("single", "trained"))
    unlearn.add_argument("--lora", action="store_true", help="train a LoRA adapter (targets inferred unless --config sets lora_target)")
    unlearn.add_argument("--dtype", default="fp32", help="weights on loading: fp32, bf16, fp16 or auto")
    unlearn.add_argument("--precision", default="auto", choices=PRECISIONS,
                         help="autocast in training: auto (bf16 on a GPU, fp32 on a CPU), fp32, bf16 or fp16 (GPU only)")
    unlearn.add_argument("--bf16", action="store_const", const="bf16", dest="precision", help="the same as --precision bf16")
    unlearn.add_argument("--gradient-checkpointing", action="store_true")
    unlearn.add_argument("--config", default="{}", help="any other UnlearnConfig fields, as JSON")
    unlearn.add_argument("--probe", default=None, metavar="RESULTS_DIR", help="probe the unlearned model into this directory")


def unlearn_command(args) -> int:
    import json

    from accelerate import PartialState

    from .probe.suite import ProbeConfig, run_probes
    from .unlearn import UnlearnConfig, unlearn
    from .world import load_concepts, load_world

    try:
        world = load_concepts(args.concepts) if args.concepts else load_world(args.world)
        config = UnlearnConfig(**{"method": args.method, "images": args.images, "lora": args.lora, "dtype": args.dtype,
                                  "precision": args.precision, "gradient_checkpointing": args.gradient_checkpointing, **json.loads(args.config)})
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
