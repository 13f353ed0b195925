"""Where the build's numbers were computed, and how much they move from one CPU to another (the re-run page)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# How each machine setting shows in the table, in this order (then the instruction-set variables).
RUNTIME_FIELDS = {"device": "device", "cpu_capability": "CPU capability", "native_bf16": "native bf16", "precision": "precision",
                  "threads": "torch threads"}
VERSION_FIELDS = ("python", "torch", "transformers", "peft", "accelerate", "tokenizers", "numpy")


def _describe(manifest: dict) -> dict:
    runtime = manifest.get("runtime", {})
    row = {label: runtime.get(key, "not recorded") for key, label in RUNTIME_FIELDS.items()}
    row["instruction-set variables"] = " ".join(f"{k}={v}" for k, v in sorted(runtime.get("isa_variables", {}).items())) or "none"
    versions = manifest.get("versions", {})
    return row | {name: versions.get(name, "not recorded") for name in VERSION_FIELDS}


def build_environment(model_dirs: dict[str, str | Path]) -> pd.DataFrame:
    """One row per distinct machine setting (device, CPU capability, native bf16, precision, threads, instruction-set
    variables, package versions) among the manifests of `model_dirs` (name -> model directory), with the models that
    were trained with it. Models without a manifest are left out."""
    rows: dict[tuple, dict] = {}
    for name, directory in model_dirs.items():
        path = Path(directory) / "manifest.json"
        if not path.exists():
            continue
        row = _describe(json.loads(path.read_text()))
        entry = rows.setdefault(tuple(map(str, row.values())), {"models": [], **row})
        entry["models"].append(name)
    table = pd.DataFrame(list(rows.values()))
    if not table.empty:
        table["models"] = table["models"].map(lambda names: ", ".join(names) if len(names) <= 4 else f"{len(names)} models ({', '.join(names[:3])}, ...)")
    return table


def cross_cpu_comparison(path: str | Path) -> tuple[pd.DataFrame, str]:
    """The recorded cross-CPU benchmark (benchmarks/cross_cpu.py): a table per environment against the AVX2 reference,
    and a sentence that says how far the numbers moved. A missing record is said, not guessed."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(), f"No cross-CPU comparison is recorded ({path.name} is missing): run benchmarks/cross_cpu.py."
    record = json.loads(path.read_text())
    reference = record["reference"]
    rows = []
    for name, result in record["against_reference"].items():
        environment = record["environments"][name]
        largest = max(result["by_metric"].items(), key=lambda item: item[1]["largest_difference"], default=(None, {}))
        rows.append({"run": name, "CPU capability": environment["runtime"]["cpu_capability"],
                     "variables": " ".join(f"{k}={v}" for k, v in environment["variables"].items()) or "none",
                     "world identical": result["world_identical"],
                     "models identical": f"{result['models_identical']} of {result['models_compared']}",
                     "first model that differs": result["first_model_that_differs"] or "none",
                     "largest weight difference": result["largest_weight_difference"],
                     "figures that differ": f"{result['figures_differing']} of {result['figures_compared']}",
                     "largest difference (metric)": f"{largest[1].get('largest_difference', 0.0):.3g} ({largest[0]})" if result["figures_differing"] else "0"})
    table = pd.DataFrame(rows)
    native = record["against_reference"].get("native")
    portable = record["against_reference"].get("portable")
    sentences = [f"On the quick profile (commit {record['commit'][:10]}, {record['date']}), every figure was compared with a run "
                 f"as on a CPU with AVX2 alone ({reference})."]
    if native is not None:
        capability = record["environments"]["native"]["runtime"]["cpu_capability"]
        sentences.append(f"With every instruction set of a CPU with {capability}, {native['figures_differing']} of "
                         f"{native['figures_compared']} figures differed; the first model to differ was "
                         f"{native['first_model_that_differs'] or 'none'}.")
    if portable is not None:
        sentences.append(f"Held to AVX2, as the study runs by default, {portable['figures_differing']} of {portable['figures_compared']} "
                         f"figures differed and {portable['models_identical']} of {portable['models_compared']} models were bit-identical.")
    return table, " ".join(sentences)


def cross_cpu_by_metric(path: str | Path) -> pd.DataFrame:
    """The recorded cross-CPU benchmark by probe metric: for each environment against the AVX2 reference, how many of
    the metric's figures differed and by how much at most (empty without a record)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame()
    rows: dict[str, dict] = {}
    for name, result in json.loads(path.read_text())["against_reference"].items():
        for metric, entry in result["by_metric"].items():
            row = rows.setdefault(metric, {"metric": metric})
            row[f"{name}: figures that differ"] = f"{entry['differing']} of {entry['figures']}"
            row[f"{name}: largest difference"] = entry["largest_difference"]
    return pd.DataFrame(list(rows.values()))


def precision_costs(paths: list[str | Path]) -> pd.DataFrame:
    """The recorded throughput benchmarks (benchmarks/throughput.py), one row per CPU capability and path: ms per step
    in fp32 and under bf16 autocast, their ratio, and the share of the one-thread fp32 matmul rate reached."""
    rows = []
    for path in map(Path, paths):
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        runtime = record["runtime"]
        for row in record["paths"]:
            rows.append({"CPU capability": runtime["cpu_capability"], "native bf16": runtime["native_bf16"], "path": row["path"],
                         "fp32 ms/step": row["fp32"]["ms_per_step"], "bf16 ms/step": row["bf16"]["ms_per_step"],
                         "bf16 / fp32": row["bf16_over_fp32"], "share of matmul rate": row.get("share_of_matmul_rate")})
    return pd.DataFrame(rows)
