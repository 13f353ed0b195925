"""A job of the study and the plan file that hands it to its task. Standard library only: a task process reads its
job here without importing torch or planning the study again (a chapter's task, which only starts papermill, spent
longer on those imports than on its own work).

The Snakefile plans the study (lvlmu.study) and writes every job to the plan file; `python -m lvlmu task` reads its
job from there, after checking that neither the code nor the job's sources changed since the plan was made (a result
made by other code than its key names would be stale)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .io import hash_file, hash_json, write_json

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class Job:
    """One result of the study: what makes it (`kind` and `spec`, which lvlmu.tasks reads), the jobs it needs, the
    source files it reads, its key and its threads. Its done-record is its output: written last, it holds the key."""

    name: str
    kind: str
    key: str
    spec: dict
    needs: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # files outside the results that it reads (their content is in its key)
    threads: int = 1
    gpu: bool = False  # asks for a GPU where the executor has them (the cluster profile)
    # Among ready jobs, Snakemake starts the higher first (see lvlmu.study.PRIORITY).
    priority: int = 1

    @property
    def rule(self) -> str:
        return self.name.replace("-", "_").replace(":", "_")


def done_record(artifacts: str | os.PathLike, name: str, key: str) -> str:
    """Where a job's done-record lies: its name holds the key, so a record of another key is never taken as done,
    whatever Snakemake's own metadata holds (or lacks)."""
    return str(Path(artifacts) / "done" / f"{name}.{key}.json")


def recorded(artifacts: str | os.PathLike, name: str) -> list[Path]:
    """The done-records of a job, of any key (at most one once its task has run)."""
    return sorted((Path(artifacts) / "done").glob(f"{name}.*.json"))


def code_fingerprint() -> str:
    """The content of the code that computes every result: the package's files and the chapters' notebooks."""
    files = sorted([*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("*.json*"), *(REPO_DIR / "notebooks").glob("*.ipynb")])
    return hash_json({str(p.relative_to(REPO_DIR)): hash_file(p) for p in files})


def write_plan(artifacts: str | os.PathLike, plan: dict[str, Job], book_dir: str | os.PathLike) -> Path:
    """Write the planned jobs, with the code's fingerprint and each job's sources' hashes, to the plan file (only when
    that changes what it holds: Snakemake plans again on every call, a cluster's jobs too). `artifacts` and the jobs'
    sources are relative to `book_dir`, where the tasks run, or absolute."""
    book_dir = Path(book_dir)
    path = book_dir / artifacts / PLAN_FILE
    content = {"code": code_fingerprint(),
               "jobs": {name: {**asdict(job), "source_hashes": {s: hash_file(book_dir / s) for s in job.sources if (book_dir / s).exists()}}
                        for name, job in plan.items()}}
    if not path.exists() or json.loads(path.read_text()) != json.loads(json.dumps(content)):
        write_json(path, content)
    return path


def read_job(artifacts: str | os.PathLike, name: str, key: str) -> Job:
    """The job `name` (or its Snakemake rule's name) from the plan file, once its key is the one Snakemake planned and
    neither the code nor its sources changed since; a ValueError says what differs."""
    path = Path(artifacts) / PLAN_FILE
    if not path.exists():
        raise ValueError(f"no plan file at {path}: run the study through `python -m lvlmu study` or the Snakefile")
    plan = json.loads(path.read_text())
    known = {f.name for f in fields(Job)}
    jobs = [Job(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k in known}) for entry in plan["jobs"].values()]
    by_name = {**{job.rule: job for job in jobs}, **{job.name: job for job in jobs}}  # the Snakefile names a job by its rule
    if name not in by_name:
        raise ValueError(f"no job {name!r} in the plan {path}; its jobs are {sorted(plan['jobs'])}")
    job = by_name[name]
    entry = plan["jobs"][job.name]
    again = "the code or the config changed while the study ran: run it again"
    if entry["key"] != key:
        raise ValueError(f"job {name}: the Snakefile planned key {key}, the plan file holds {entry['key']}; {again}")
    if plan["code"] != code_fingerprint():
        raise ValueError(f"job {name}: lvlmu's code or notebooks differ from those the study was planned with; {again}")
    changed = [s for s, digest in entry["source_hashes"].items() if not Path(s).exists() or hash_file(s) != digest]
    if changed:
        raise ValueError(f"job {name}: its sources {changed} changed since the study was planned; {again}")
    return job
