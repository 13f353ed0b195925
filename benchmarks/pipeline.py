"""The study end to end on a fresh clone: the README's main command (`make study`, which builds the environment,
runs every notebook and builds the book), then the same command again with nothing changed.

    python benchmarks/pipeline.py                   # the full profile, against 60 and 2 minutes
    python benchmarks/pipeline.py --profile quick   # what CI runs
    python benchmarks/pipeline.py --emulate-avx2    # as on a CPU with AVX2 alone (lvlmu.numerics.AVX2_EMULATION)
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/pipeline.py   # any instruction-set variables of the caller's pass through

Prints both wall times and their ratios to the targets, the CPU capability the models were trained with (from their
manifests), and the time of each stage; records them (with the commit, the machine's cores and the stage statuses) in
benchmarks/results/pipeline-<profile>[-avx2].json. The clone stays in --workdir for inspection.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lvlmu.numerics import AVX2_EMULATION, ISA_VARIABLES  # noqa: E402  (torch-free)

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"full": (60 * 60, 2 * 60), "quick": (30 * 60, 2 * 60)}


def timed_make(clone: Path, profile: str, log: Path, env: dict) -> float:
    started = time.time()
    with log.open("w") as out:
        result = subprocess.run(["make", "study", f"PROFILE={profile}"], cwd=clone, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.time() - started
    if result.returncode != 0:
        sys.exit(f"`make study PROFILE={profile}` failed after {seconds:.0f} s; its log: {log}")
    return seconds


def stage_counts(log: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        if line.startswith("[lvlmu] [") and "stage" in line:
            status = line.split(": ", 1)[1].split(" ")[0]
            counts[status] = counts.get(status, 0) + 1
    return counts


def stage_seconds(log: Path) -> dict[str, float]:
    """Each stage's own time, as the pipeline logged it ("[lvlmu] [k/n] stage NAME: ran (S s)")."""
    times = {}
    for line in log.read_text().splitlines():
        if line.startswith("[lvlmu] [") and ": ran (" in line:
            name, seconds = line.split("] stage ", 1)[1].split(": ran (")
            times[name] = float(seconds.split(" ")[0])
    return times


def stage_groups(times: dict[str, float]) -> dict[str, float]:
    """Stage seconds summed by kind: the foundation stages by name, grid runs by setting, the rest as chapters."""
    groups: dict[str, float] = {}
    for name, seconds in times.items():
        if name in ("world", "pretrain", "probe", "adapt"):
            group = name
        else:
            group = name.split("-")[0] + " runs" if name.startswith(("split-", "single-")) else "chapters"
        groups[group] = groups.get(group, 0.0) + seconds
    return {k: round(v) for k, v in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=sorted(TARGETS))
    parser.add_argument("--workdir", default="/tmp/lvlmu-pipeline-benchmark")
    parser.add_argument("--emulate-avx2", action="store_true", help="run as on a CPU with AVX2 alone: " + " ".join(f"{k}={v}" for k, v in AVX2_EMULATION.items()))
    args = parser.parse_args()
    # Instruction-set variables the caller set pass through (and are recorded in the manifests); --emulate-avx2 replaces them.
    env = ({k: v for k, v in os.environ.items() if k not in ISA_VARIABLES} | AVX2_EMULATION) if args.emulate_avx2 else dict(os.environ)
    workdir = Path(args.workdir)
    clone = workdir / "lvlmu"
    if clone.exists():
        sys.exit(f"{clone} exists: remove it (a fresh clone is the point) or pass another --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True).stdout.strip()
    first = timed_make(clone, args.profile, workdir / "first.log", env)
    second = timed_make(clone, args.profile, workdir / "second.log", env)
    runtime = json.loads((clone / "artifacts" / "models" / "base" / "manifest.json").read_text()).get("runtime", {})
    stages = stage_seconds(workdir / "first.log")
    first_target, second_target = TARGETS[args.profile]
    record = {"profile": args.profile, "commit": commit, "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d"), "fresh_clone_seconds": round(first), "fresh_clone_target_seconds": first_target,
              "unchanged_rerun_seconds": round(second), "unchanged_rerun_target_seconds": second_target,
              "first_run_stages": stage_counts(workdir / "first.log"), "rerun_stages": stage_counts(workdir / "second.log"),
              "emulated_avx2": args.emulate_avx2, "runtime": runtime, "stage_seconds_by_kind": stage_groups(stages), "stage_seconds": stages}
    print(f"profile {args.profile}, {os.cpu_count()} cores, commit {commit[:10]}, CPU capability {runtime.get('cpu_capability')}"
          f"{' (AVX2 emulated)' if args.emulate_avx2 else ''}, precision {runtime.get('precision')}")
    print(f"fresh clone, make study: {first / 60:.1f} min = {first / first_target:.2f} of the {first_target // 60} min target")
    print(f"unchanged rerun:         {second:.0f} s = {second / second_target:.2f} of the {second_target} s target")
    print(f"stages, first run: {record['first_run_stages']}; rerun: {record['rerun_stages']}")
    print("stage seconds by kind (summed over both lanes): " + ", ".join(f"{k} {v}" for k, v in record["stage_seconds_by_kind"].items()))
    out = REPO / "benchmarks" / "results" / f"pipeline-{args.profile}{'-avx2' if args.emulate_avx2 else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"recorded in {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
