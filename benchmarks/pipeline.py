"""The study end to end on a fresh clone: the README's main command (`make study`, which builds the environment,
runs every job through Snakemake and builds the book), the same command again with nothing changed, then what three
edits cost on the built study:

- a comment in lvlmu/unlearn/methods.py (target: no job runs);
- a version bump of one method, NPO (target: its grid jobs, the chapters and the book; no other model trains);
- a version bump of one metric, privacy (target: the probe jobs recompute that metric alone; no model trains).

    python benchmarks/pipeline.py                   # the full profile, against 60 minutes and 30 seconds
    python benchmarks/pipeline.py --profile quick   # what CI runs
    python benchmarks/pipeline.py --emulate-avx2    # as on a CPU with AVX2 alone (lvlmu.numerics.AVX2_EMULATION)
    python benchmarks/pipeline.py --no-edits        # the two timings alone
    python benchmarks/pipeline.py --edits-only      # the edits alone, on the clone a --no-edits run left, into its record
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/pipeline.py   # any instruction-set variables of the caller's pass through

Prints the wall times and their ratios to the targets, the CPU capability the models were trained with (from their
manifests), each job's time by kind, and for each edit the jobs that ran, the models that trained and the wall time;
records them (with the commit and the machine's cores) in benchmarks/results/pipeline-<profile>[-avx2].json, the
file's earlier records kept under "previous" (newest first). Machines of one kind differ in speed, so each record
also keeps the seconds its pretraining jobs took: the same work in every build until the pretraining recipe changes,
they say how fast the machine ran. The clone stays in --workdir for inspection.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lvlmu.numerics import AVX2_EMULATION, ISA_VARIABLES  # noqa: E402  (torch-free)

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"full": (60 * 60, 30), "quick": (30 * 60, 30)}


def timed_make(clone: Path, profile: str, log: Path, env: dict) -> float:
    started = time.time()
    with log.open("w") as out:
        result = subprocess.run(["make", "study", f"PROFILE={profile}"], cwd=clone, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.time() - started
    if result.returncode != 0:
        sys.exit(f"`make study PROFILE={profile}` failed after {seconds:.0f} s; its log: {log}")
    return seconds


def records(clone: Path) -> dict[str, dict]:
    return {p.stem.rsplit(".", 1)[0]: json.loads(p.read_text()) for p in sorted((clone / "artifacts" / "done").glob("*.json"))}  # NAME.KEY.json


def job_seconds_by_kind(done: dict[str, dict]) -> dict[str, int]:
    """Each job's own time (from its done-record), summed by kind; a grid job by setting."""
    groups: dict[str, float] = {}
    for name, record in done.items():
        kind = record["kind"] if record["kind"] != "grid" else f"grid, {name.split('-grid-')[1].split('-')[0]}"  # w1-grid-split-ga
        groups[kind] = groups.get(kind, 0.0) + record["wall_seconds"]
    return {k: round(v) for k, v in groups.items()}


def pretrain_seconds(done: dict[str, dict]) -> list[float]:
    """Each pretraining job's seconds, sorted: the machine's speed, as builds of other commits can compare it."""
    return sorted(round(r["wall_seconds"], 1) for r in done.values() if r["kind"] == "pretrain")


def earlier_records(path: Path) -> list[dict]:
    """The records `path` holds (its own, then its "previous" ones), newest first: each job's seconds included, so that a
    schedule can be simulated on an earlier build's times."""
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    before = old.pop("previous", [])
    return [old, *(before if isinstance(before, list) else [before])]


def jobs_ran(log: Path) -> dict[str, int]:
    """The engine's closing count: "[lvlmu] N jobs in S s: A ran, B cached"."""
    line = next(line for line in reversed(log.read_text().splitlines()) if re.match(r"\[lvlmu\] \d+ jobs in", line))
    return {status: int(n) for n, status in re.findall(r"(\d+) ([a-z, ]+?)(?:,|$)", line.split(": ", 1)[1])}


def trained(clone: Path, since: float) -> list[str]:
    """The models whose manifest was written after `since` (every world's, and the shared tower)."""
    artifacts = clone / "artifacts"
    return sorted(str(p.parent.relative_to(artifacts)) for p in artifacts.glob("**/models/**/manifest.json") if p.stat().st_mtime > since)


def edit(clone: Path, path: str, old: str, new: str) -> None:
    """Replace `old` by `new` in the clone's file; in a version edit, "{v}" in `old` matches the current version and
    "{v+1}" in `new` is the next (so the benchmark follows the code's versions)."""
    file = clone / path
    text = file.read_text()
    if "{v}" in old:
        found = re.search(re.escape(old).replace(re.escape("{v}"), r"(\d+)"), text)
        if found:
            old, new = found.group(0), new.replace("{v+1}", str(int(found.group(1)) + 1))
    if old not in text:
        sys.exit(f"{path} no longer holds {old!r}: update the benchmark's edits")
    file.write_text(text.replace(old, new, 1))


def measured_edit(clone: Path, profile: str, name: str, workdir: Path, env: dict, changes: list[tuple[str, str, str]]) -> dict:
    """Apply the changes (and record the versions table when a version moved), run the study, and say what ran."""
    for path, old, new in changes:
        edit(clone, path, old, new)
    if any("version=" in new or "VERSION" in new for _, _, new in changes):
        subprocess.run([str(clone / ".venv" / "bin" / "python"), "-m", "lvlmu", "versions", "--record"], cwd=clone, check=True, env=env)
    started = time.time()
    log = workdir / f"edit-{name}.log"
    seconds = timed_make(clone, profile, log, env)
    done = records(clone)
    ran = sorted(n for n in done if any(p.stat().st_mtime > started for p in (clone / "artifacts" / "done").glob(f"{n}.*.json")))
    return {"wall_seconds": round(seconds), "jobs": jobs_ran(log), "jobs_that_ran": ran, "models_trained": trained(clone, started)}


EDITS = {
    "comment in unlearn/methods.py": [("lvlmu/unlearn/methods.py", "class NPO(GradDiff):\n", "class NPO(GradDiff):\n    # a comment changes no key\n")],
    "NPO version bump": [("lvlmu/unlearn/methods.py", '@register("npo", version={v})', '@register("npo", version={v+1})')],
    "privacy metric version bump": [("lvlmu/probe/suite.py", '@metric("privacy", version={v})', '@metric("privacy", version={v+1})')],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=sorted(TARGETS))
    parser.add_argument("--workdir", default="/tmp/lvlmu-pipeline-benchmark")
    parser.add_argument("--emulate-avx2", action="store_true", help="run as on a CPU with AVX2 alone: " + " ".join(f"{k}={v}" for k, v in AVX2_EMULATION.items()))
    parser.add_argument("--no-edits", action="store_true", help="skip the three edits")
    parser.add_argument("--edits-only", action="store_true",
                        help="measure the three edits on the built clone in --workdir, adding them to the record of its own commit")
    args = parser.parse_args()
    # Instruction-set variables the caller set pass through (and are recorded in the manifests); --emulate-avx2 replaces them.
    env = ({k: v for k, v in os.environ.items() if k not in ISA_VARIABLES} | AVX2_EMULATION) if args.emulate_avx2 else dict(os.environ)
    workdir = Path(args.workdir)
    clone = workdir / "lvlmu"
    out = REPO / "benchmarks" / "results" / f"pipeline-{args.profile}{'-avx2' if args.emulate_avx2 else ''}.json"
    if args.edits_only:
        return measure_edits(clone, args.profile, workdir, env, out)
    if clone.exists():
        sys.exit(f"{clone} exists: remove it (a fresh clone is the point) or pass another --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True).stdout.strip()
    first = timed_make(clone, args.profile, workdir / "first.log", env)
    done = records(clone)
    second = timed_make(clone, args.profile, workdir / "second.log", env)
    runtime = json.loads((next((clone / "artifacts").glob("w*/models/base/manifest.json"))).read_text()).get("runtime", {})
    first_target, second_target = TARGETS[args.profile]
    record = {"profile": args.profile, "commit": commit, "cpu_count": os.cpu_count(), "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%d"), "fresh_clone_seconds": round(first), "fresh_clone_target_seconds": first_target,
              "unchanged_rerun_seconds": round(second), "unchanged_rerun_target_seconds": second_target,
              "first_run_jobs": jobs_ran(workdir / "first.log"), "rerun_jobs": jobs_ran(workdir / "second.log"),
              "emulated_avx2": args.emulate_avx2, "runtime": runtime, "job_seconds_by_kind": job_seconds_by_kind(done),
              "pretrain_seconds": pretrain_seconds(done), "job_seconds": {n: round(r["wall_seconds"], 1) for n, r in done.items()}}
    print(f"profile {args.profile}, {os.cpu_count()} cores, commit {commit[:10]}, CPU capability {runtime.get('cpu_capability')}"
          f"{' (AVX2 emulated)' if args.emulate_avx2 else ''}, precision {runtime.get('precision')}")
    print(f"fresh clone, make study: {first / 60:.1f} min = {first / first_target:.2f} of the {first_target // 60} min target")
    print(f"unchanged rerun:         {second:.0f} s = {second / second_target:.2f} of the {second_target} s target")
    print(f"jobs, first run: {record['first_run_jobs']}; rerun: {record['rerun_jobs']}")
    print("job seconds by kind (summed over both cores): " + ", ".join(f"{k} {v}" for k, v in record["job_seconds_by_kind"].items()))
    print(f"pretraining, the machine's speed: {', '.join(map(str, record['pretrain_seconds']))} s a model")
    out.parent.mkdir(parents=True, exist_ok=True)
    record["previous"] = earlier_records(out)
    out.write_text(json.dumps(record, indent=1) + "\n")  # written now, and again after each edit: a failed edit loses nothing
    if not args.no_edits:
        return measure_edits(clone, args.profile, workdir, env, out)
    print(f"recorded in {out.relative_to(REPO)}")


def measure_edits(clone: Path, profile: str, workdir: Path, env: dict, out: Path) -> None:
    """Each edit in turn on the built `clone`, recorded under "edits" in `out`'s record, which must be the clone's."""
    if not clone.exists() or not out.exists():
        sys.exit(f"the edits need a built clone at {clone} and its record at {out}: run without --edits-only first")
    record = json.loads(out.read_text())
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True, check=True).stdout.strip()
    if record["commit"] != commit or subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=clone,
                                                    capture_output=True, text=True).stdout.strip():
        sys.exit(f"{out.name} records commit {record['commit'][:10]}, the clone is at {commit[:10]} or edited: build a fresh one")
    record["edits"] = {}
    for name, changes in EDITS.items():
        result = record["edits"][name] = measured_edit(clone, profile, name.split()[0], workdir, env, changes)
        print(f"{name}: {len(result['jobs_that_ran'])} jobs ran in {result['wall_seconds']} s "
              f"({', '.join(result['jobs_that_ran']) or 'none'}); models trained: {', '.join(result['models_trained']) or 'none'}")
        out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"recorded in {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
