"""`python -m lvlmu study`: the study through Snakemake (workflow/Snakefile), then a report of what ran, what
failed and which runs the book lacks."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .study import REPO_DIR, StudyConfig, book_job, book_sources, notebook_parameters, done_record, get_profile, grid_runs, plan_jobs, recorded, relative
from .unlearn.methods import METHODS

SNAKEFILE = REPO_DIR / "workflow" / "Snakefile"


def stage_book_sources(book_dir: Path) -> None:
    """Copy the book's fixed sources (config, table of contents, prose pages, bibliography) into another book directory."""
    for source in book_sources(REPO_DIR):
        target = book_dir / source.relative_to(REPO_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def snakemake_command(config_file: Path, book_dir: Path, cores: int, force: bool = False, dry_run: bool = False,
                      extra: tuple[str, ...] = ()) -> list[str]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(book_dir),
               "--configfile", str(config_file), "--cores", str(cores), "--keep-going", "--rerun-incomplete",
               # A job reruns when its key or its set of inputs changes; a file's time alone changes nothing.
               "--rerun-triggers", "params", "input",
               # Jobs by priority, chosen greedily: the default ILP solve runs again each time a job ends, while a core waits.
               "--scheduler", "greedy"]
    if force:
        command.append("--forceall")
    # A dry run shows each job and why it would run; a real one shows progress and the jobs' own output.
    command += ["--dry-run"] if dry_run else ["--quiet", "rules"]
    return command + list(extra)


def run_study(config: StudyConfig | str = "full", book_dir: str | os.PathLike = REPO_DIR, artifacts: str | os.PathLike | None = None,
              build: bool = True, force: bool = False, kernel: str | None = None, log=print, jobs_at_once: int = 2,
              only: str | None = None, native_isa: bool = False, dry_run: bool = False, retry_failed: bool = False,
              snakemake_profile: str | None = None, tune: bool = False) -> dict:
    """Run every job whose key changed (all of them with `force`), `jobs_at_once` cores' worth at a time, then build
    the book. Returns each job's status ("ran" or "cached", "with failures" when some of its runs or its chapter failed;
    "failed" when the job itself did; "not run" when a job it needs failed), the failures by run or chapter (kept in
    the done-records, and reported every time until `retry_failed` or a new key runs them again), the runs without
    results, and where the book is. `only` runs one method's grid runs. `tune` runs the tuning instead (`make tune`:
    lvlmu.study.tuning_jobs), which writes the settings file and builds no book."""
    config = get_profile(config) if isinstance(config, str) else config
    if only is not None and only not in METHODS:
        raise ValueError(f"unknown method {only!r} for --only; the methods are {sorted(METHODS)}")
    book_dir = Path(book_dir).resolve()
    if book_dir != REPO_DIR:  # every time: the book's sources may have changed since the last build
        stage_book_sources(book_dir)
    artifacts = Path(artifacts).resolve() if artifacts is not None else book_dir / "artifacts"
    a = relative(artifacts, book_dir)
    build = build and not tune
    settings = {"only": only, "fresh": force, "kernel": kernel, "artifacts": str(a), "book": build, "native_isa": native_isa, "gpus": 0,
                "tune": tune}
    artifacts.mkdir(parents=True, exist_ok=True)
    if snakemake_profile is not None:  # its config entries (grid_jobs, gpus) shape the plan: this process plans with them too
        config, settings = apply_profile_config(Path(snakemake_profile), config, settings)
    with study_lock(book_dir) as lock:
        config_file = artifacts / "study-config.json"
        config_file.write_text(json.dumps({**notebook_parameters(config), **settings}, indent=1))
        plan = plan_jobs(config, artifacts, book_dir, only, tune)
        if build:
            plan["book"] = book_job([j for j in plan.values() if j.kind == "chapter"], book_dir)
        keys = {name: job.key for name, job in plan.items()}
        if tune and not config.settings_path().exists():  # the choice's file was deleted: make it again (a hand edit goes unseen)
            for old in recorded(artifacts, "tune-select"):
                old.unlink()
        if retry_failed:  # a job whose runs or chapter failed runs again (its finished runs are reused by their keys)
            for name in keys:
                path = book_dir / done_record(a, name, keys[name])
                if path.exists() and json.loads(path.read_text()).get("failed") and not dry_run:
                    path.unlink()
        before = {name: _mtime(book_dir / done_record(a, name, key)) for name, key in keys.items()}
        extra = ("--profile", str(Path(snakemake_profile).resolve())) if snakemake_profile else ()
        if any((book_dir / ".snakemake" / "locks").glob("*")):  # we hold the study lock: Snakemake's is a killed run's leftover
            log("[lvlmu] removing the lock that an interrupted study left")
            subprocess.run(snakemake_command(config_file, book_dir, jobs_at_once, extra=("--unlock", *extra)), capture_output=True, pass_fds=(lock,))
        started, started_ns = time.time(), time.time_ns()
        result = subprocess.run(snakemake_command(config_file, book_dir, jobs_at_once, force, dry_run, extra), pass_fds=(lock,))
    if dry_run:
        return {"returncode": result.returncode}
    return _report(config, book_dir, a, keys, before, started, started_ns, result.returncode, build, log, tune)


def apply_profile_config(profile: Path, config: StudyConfig, settings: dict) -> tuple[StudyConfig, dict]:
    """A Snakemake profile's `config:` entries ("grid_jobs=run", "gpus=1"), applied to the study config and the
    engine's settings, so that this process plans the jobs Snakemake will run."""
    import yaml

    from dataclasses import replace

    path = profile / "config.yaml"
    if not path.exists():
        raise ValueError(f"no Snakemake profile at {profile} (no config.yaml); the project's: {REPO_DIR / 'profiles'}")
    entries = yaml.safe_load(path.read_text()).get("config", []) or []
    for entry in entries if isinstance(entries, list) else [f"{k}={v}" for k, v in entries.items()]:
        key, _, value = str(entry).partition("=")
        if key == "grid_jobs":
            config = replace(config, grid_jobs=value)
        elif key in settings:
            settings = {**settings, key: yaml.safe_load(value)}
        else:
            raise ValueError(f"{path}: config entry {entry!r}; lvlmu reads grid_jobs and {sorted(settings)}")
    return config, settings


@contextlib.contextmanager
def study_lock(book_dir: Path):
    """Hold the book directory's study lock: a second study on the same directory is refused while one runs. Yields
    the lock's file descriptor: Snakemake inherits it, so the lock lasts as long as Snakemake does, even if this
    process is killed first."""
    import fcntl

    (book_dir / ".snakemake").mkdir(exist_ok=True)
    with open(book_dir / ".snakemake" / "lvlmu-study.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another study is running on {book_dir}; wait for it, or stop it") from None
        yield handle.fileno()


def _report(config: StudyConfig, book_dir: Path, a: Path, keys: dict, before: dict, started: float, started_ns: int,
            returncode: int, build: bool, log, tune: bool = False) -> dict:
    """What each job did, from its done-record: "ran", "cached", "failed" or "not run"."""
    names = list(keys)
    report: dict = {"jobs": {}, "failed": {}, "book": None, "seconds": time.time() - started, "complete": returncode == 0}
    for name in names:
        path = book_dir / done_record(a, name, keys[name])
        if not path.exists():  # not run, or run and failed, or a record of another key (an interrupted study)
            job_log = book_dir / a / "logs" / f"{name}.log"
            if _mtime(job_log) is not None and _mtime(job_log) > started_ns:
                report["jobs"][name] = "failed"
                report["failed"][name] = f"the job failed; its log: {job_log}"
            else:
                report["jobs"][name] = "not run"
            continue
        record = json.loads(path.read_text())
        report["jobs"][name] = "ran" if _mtime(path) != before[name] else "cached"
        report["failed"] |= record.get("failed", {})
        if record.get("failed"):
            report["jobs"][name] += " with failures"
    if build and (book_dir / "_build" / "html" / "index.html").exists() and report["jobs"].get("book") in ("ran", "cached"):
        report["book"] = str(book_dir / "_build" / "html")
    runs = {} if tune else grid_runs(config, a)
    from .unlearn.results import has_results

    report["missing"] = [name for name, run in runs.items() if not has_results(run, book_dir)]
    counts = {status: sum(s == status for s in report["jobs"].values()) for status in dict.fromkeys(report["jobs"].values())}
    log(f"[lvlmu] {len(names)} jobs in {report['seconds']:.0f} s: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if report["book"]:
        log(f"[lvlmu] the book: {report['book']}/index.html")
    if not report["complete"]:
        log("[lvlmu] Snakemake stopped before the end (a job failed, or it was interrupted); the next study runs what is left")
    if report["failed"]:
        log(f"[lvlmu] {len(report['failed'])} FAILED; the rest ran:\n" + "\n".join(f"  {n}: {_last_line(e)}" for n, e in report["failed"].items()))
    if report["missing"]:
        log(f"[lvlmu] the book lacks the results of {len(report['missing'])} run(s), and its pages say so: " + ", ".join(report["missing"]))
    return report


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def _last_line(text: str) -> str:
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
