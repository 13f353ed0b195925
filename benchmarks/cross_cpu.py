"""Do the study's numbers depend on the CPU that computed them? The quick profile, run three times on this machine:

- `native`: PyTorch, oneDNN and MKL use every instruction set of this CPU (`python -m lvlmu study --native-isa`);
- `avx2`: as a CPU with AVX2 alone (lvlmu.numerics.AVX2_EMULATION);
- `portable`: the study's default, held to AVX2 (lvlmu.numerics.PORTABLE_NUMERICS).

Each run's world, models and probe results are compared with the `avx2` run's: the world's files, every model's
weights (the largest difference, and where the first model differs), and every number of every probe summary (the
figures the book's chapters are computed from). Also the wall time of each run and of its stages. Records
benchmarks/results/cross-cpu-quick.json, which the book's re-run page reads.

    .venv/bin/python benchmarks/cross_cpu.py [--workdir DIR]     # about 3 quick studies; run it on an idle machine
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from lvlmu.numerics import AVX2_EMULATION, ISA_VARIABLES, PORTABLE_NUMERICS

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "cross-cpu-quick.json"
ENVIRONMENTS = {"native": {}, "avx2": AVX2_EMULATION, "portable": PORTABLE_NUMERICS}
REFERENCE = "avx2"
MODEL_ORDER = ("vision", "base", "oracle", "oracle_seed1")  # then the unlearned models


def run_one(book: Path) -> None:
    """One quick study into `book`, in this process (whose environment the caller set); job times to timing.json."""
    from lvlmu.engine import run_study
    from lvlmu.precision import runtime

    started = time.time()
    report = run_study("quick", book_dir=book, build=False, native_isa="ATEN_CPU_CAPABILITY" not in os.environ)
    done = {p.stem: json.loads(p.read_text()) for p in sorted((book / "artifacts" / "done").glob("*.json"))}
    (book / "timing.json").write_text(json.dumps({"wall_seconds": time.time() - started, "stages": {n: round(r["wall_seconds"]) for n, r in done.items()},
                                                  "runtime": runtime(), "failed": list(report["failed"])}, indent=1))


def weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


def weight_difference(a: Path, b: Path) -> float:
    """The largest absolute difference between two models' weights (0.0: bit-identical; inf: not the same tensors)."""
    wa, wb = weights(a), weights(b)
    if wa.keys() != wb.keys() or any(wa[k].shape != wb[k].shape for k in wa):
        return math.inf
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def files_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def numbers(tree, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON tree, by its path."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in numbers(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in numbers(sub, f"{prefix}[{i}]").items()}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return {prefix: float(tree)}
    return {}


def probe_figures(artifacts: Path) -> dict[str, float]:
    """The numbers of every model's probe summaries (their metrics, not their manifests or timings)."""
    out = {}
    for summary in sorted((artifacts / "probes").glob("*/summary.json")):
        metrics = json.loads(summary.read_text())["metrics"]
        out |= numbers({name: entry["summary"] for name, entry in metrics.items()}, summary.parent.name)
    return out


def compare(reference: Path, other: Path) -> dict:
    ref_art, art = reference / "artifacts", other / "artifacts"
    models = [m for m in MODEL_ORDER if (ref_art / "models" / m).exists()]
    models += sorted(f"unlearned/{p.name}" for p in (ref_art / "models").glob("unlearned/*") if (p / "model.safetensors").exists())
    differences = {m: weight_difference(ref_art / "models" / m, art / "models" / m) for m in models if (art / "models" / m / "model.safetensors").exists()}
    a, b = probe_figures(ref_art), probe_figures(art)
    shared = sorted(set(a) & set(b))
    differing = {k: abs(a[k] - b[k]) for k in shared if not (a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])))}
    by_metric: dict[str, dict] = {}
    for key in shared:
        entry = by_metric.setdefault(key.split("/")[1], {"figures": 0, "differing": 0, "largest_difference": 0.0})
        entry["figures"] += 1
        if key in differing:
            entry["differing"] += 1
            entry["largest_difference"] = max(entry["largest_difference"], differing[key])
    return {
        "world_identical": files_hash(ref_art / "world") == files_hash(art / "world"),
        "first_model_that_differs": next((m for m in models if differences.get(m, 0.0) > 0.0), None),
        "models_identical": sum(d == 0.0 for d in differences.values()), "models_compared": len(differences),
        "largest_weight_difference": max(differences.values(), default=0.0),
        "weight_difference_by_model": differences,
        "figures_compared": len(shared), "figures_differing": len(differing),
        "largest_difference_at": max(differing, key=differing.get) if differing else None,
        "by_metric": by_metric,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/lvlmu-cross-cpu")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)  # internal: one study, in a child process
    args = parser.parse_args()
    if args.run:
        return run_one(Path(args.run))
    workdir = Path(args.workdir)
    if workdir.exists():
        sys.exit(f"{workdir} exists: remove it or pass another --workdir")
    base_env = {k: v for k, v in os.environ.items() if k not in ISA_VARIABLES}
    timings = {}
    for name, variables in ENVIRONMENTS.items():
        print(f"[cross-cpu] the quick study, {name}: {variables or 'every instruction set of this CPU'}", flush=True)
        subprocess.run([sys.executable, __file__, "--run", str(workdir / name)], env={**base_env, **variables}, check=True,
                       stdout=subprocess.DEVNULL)
        timings[name] = json.loads((workdir / name / "timing.json").read_text())
        print(f"[cross-cpu] {name}: {timings[name]['wall_seconds'] / 60:.1f} min, capability {timings[name]['runtime']['cpu_capability']}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    record = {"profile": "quick", "commit": commit, "date": time.strftime("%Y-%m-%d"), "reference": REFERENCE,
              "environments": {name: {"variables": ENVIRONMENTS[name], **timings[name]} for name in ENVIRONMENTS},
              "against_reference": {name: compare(workdir / REFERENCE, workdir / name) for name in ENVIRONMENTS if name != REFERENCE}}
    for name, result in record["against_reference"].items():
        print(f"{name} against {REFERENCE}: world identical {result['world_identical']}; models identical {result['models_identical']} "
              f"of {result['models_compared']} (first to differ: {result['first_model_that_differs']}, largest weight difference "
              f"{result['largest_weight_difference']:.2g}); figures differing {result['figures_differing']} of {result['figures_compared']}")
        for metric, entry in result["by_metric"].items():
            print(f"    {metric:12s} {entry['differing']:5d} of {entry['figures']:5d} differ, by at most {entry['largest_difference']:.3g}")
    RESULT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"recorded in {RESULT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
