"""Arguments the commands that take a checkpoint and concepts share (`unlearn`, `attack`)."""
from __future__ import annotations


def add_checkpoint_arguments(parser, model_help: str, precision_help: str) -> None:
    """--model; --concepts or --world (one of them); --dtype and --precision."""
    from .precision import PRECISIONS

    parser.add_argument("--model", required=True, help=model_help)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--concepts", help="a concept folder (see lvlmu.world.concepts)")
    source.add_argument("--world", help="a world directory built by lvlmu")
    parser.add_argument("--dtype", default="fp32", help="weights on loading: fp32, bf16, fp16 or auto")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help=precision_help)


def load_source(args):
    """The world the command's --concepts or --world names."""
    from .world import load_concepts, load_world

    return load_concepts(args.concepts) if args.concepts else load_world(args.world)
