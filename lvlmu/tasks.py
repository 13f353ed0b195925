"""One job of the study, as Snakemake runs it: `python -m lvlmu task NAME --key KEY`, in the book directory. It reads
its job from the plan file that the Snakefile wrote (lvlmu.job), without importing torch or planning the study again
(a chapter's task only starts papermill), makes its result, then writes its done-record (artifacts/done/NAME.json)
last, so an interrupted job leaves nothing that a rerun would take as done.

A grid run or a chapter that fails does not fail its job: the failure is written in the record (the engine reports it
and has it retried next time), the rest of the grid goes on, and the book names what is missing.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from .io import exit_on_sigterm, package_versions, write_json
from .job import REPO_DIR, Job, done_record, read_job, recorded

KERNEL_NAME = "lvlmu"


def run_task(name: str, artifacts: Path, key: str, fresh: bool = False, kernel: str | None = None) -> dict:
    """Run the job `name` of the plan file (lvlmu.job: what the Snakefile planned, the study's or the tuning's) in the
    current directory (the book's); returns its done-record."""
    book_dir = Path.cwd()
    job = read_job(artifacts, name, key)
    started = time.time()
    failed = RUNNERS[job.kind](job, book_dir, fresh, kernel) or {}
    record = {"job": job.name, "kind": job.kind, "key": job.key, "failed": failed, "wall_seconds": time.time() - started,
              "versions": package_versions()}
    path = Path(done_record(artifacts, job.name, job.key))
    write_json(path, record)
    for old in recorded(artifacts, job.name):  # the records of its earlier keys
        if old != path:
            old.unlink()
    return record


def _world(job: Job, book_dir: Path, fresh: bool, kernel) -> None:
    from .world import WorldConfig, build_world, build_world_cached

    config = WorldConfig(**job.spec["config"])
    (build_world if fresh else build_world_cached)(config, job.spec["world_dir"], progress=False)


def _vision(job: Job, book_dir: Path, fresh: bool, kernel) -> None:
    from .vision import VisionPretrainConfig, pretrain_vision, pretrain_vision_cached
    from .world import load_world

    config = VisionPretrainConfig(**job.spec["config"])
    (pretrain_vision if fresh else pretrain_vision_cached)(load_world(job.spec["world_dir"]), job.spec["out_dir"], config, progress_bar=False)


def _pretrain(job: Job, book_dir: Path, fresh: bool, kernel) -> None:
    from .pretrain import PretrainConfig, pretrain, pretrain_cached
    from .world import load_world

    config = PretrainConfig(**job.spec["config"])
    (pretrain if fresh else pretrain_cached)(load_world(job.spec["world_dir"]), job.spec["out_dir"], config,
                                             job.spec["vision_dir"], progress_bar=False)


def _probe(job: Job, book_dir: Path, fresh: bool, kernel) -> None:
    from .probe.suite import ProbeConfig, run_probes
    from .world import load_world

    if fresh:
        shutil.rmtree(job.spec["results_dir"], ignore_errors=True)
    run_probes(job.spec["model_dir"], load_world(job.spec["world_dir"]), job.spec["results_dir"], ProbeConfig(**job.spec["config"]),
               progress=False, replace_stale=True)


def _reference(job: Job, book_dir: Path, fresh: bool, kernel) -> None:
    """The base and the oracle probed on each single-image person alone: what every method's run on that person
    compares with."""
    from dataclasses import replace

    from .probe.suite import run_probes, study_probe_config
    from .unlearn.data import resolve_forget
    from .unlearn.results import reference_results
    from .world import load_world

    spec = job.spec
    world = load_world(spec["world_dir"])
    for forget in spec["forgets"]:
        people = resolve_forget(world, forget)
        probes = replace(study_probe_config(spec["probe_config"], spec["base_dir"]), forget_people=tuple(people))
        for model in ("base", "oracle"):
            results = reference_results(spec["reference_results_dir"], model, people)
            if fresh:
                shutil.rmtree(results, ignore_errors=True)
            run_probes(spec[f"{model}_dir"], world, results, probes, progress=False, replace_stale=True)


def _grid(job: Job, book_dir: Path, fresh: bool, kernel) -> dict:
    """Each run of the job in turn: unlearn, then probe. A run that fails is recorded and the others go on."""
    from .unlearn import UnlearnConfig, unlearn, unlearn_cached
    from .unlearn.results import probe_run
    from .world import load_world

    spec, failed = job.spec, {}
    world = load_world(spec["world_dir"])
    for k, run in enumerate(spec["runs"], 1):
        started = time.time()
        print(f"[lvlmu] {job.name}: run {k}/{len(spec['runs'])} {run['name']}", flush=True)
        try:
            config = UnlearnConfig(**run["config"])
            (unlearn if fresh else unlearn_cached)(world, spec["base_dir"], run["model_dir"], config, progress_bar=False)
            if fresh:
                shutil.rmtree(run["results_dir"], ignore_errors=True)
            probe_run(world, config, run["model_dir"], run["results_dir"], spec["base_dir"], spec["oracle_dir"],
                      spec["reference_results_dir"], spec["probe_config"])
            print(f"[lvlmu] {run['name']}: done in {time.time() - started:.0f} s", flush=True)
        except Exception as error:  # the run's failure is a result to report; the other runs go on
            failed[run["name"]] = "".join(traceback.format_exception(error)[-8:])
            print(f"[lvlmu] {run['name']}: FAILED: {error}", flush=True)
    return failed


def _attack(job: Job, book_dir: Path, fresh: bool, kernel) -> dict:
    """The attacks on each of the job's models in turn, on the people each forgot. A model that fails is recorded and
    the others go on."""
    from dataclasses import replace

    from .attack.suite import AttackConfig, run_attacks
    from .unlearn.data import resolve_forget
    from .world import load_world

    spec, failed = job.spec, {}
    world = load_world(spec["world_dir"])
    config = AttackConfig(**spec["config"])
    for k, target in enumerate(spec["targets"], 1):
        started = time.time()
        print(f"[lvlmu] {job.name}: model {k}/{len(spec['targets'])} {target['name']}", flush=True)
        if not (Path(target["model_dir"]) / "config.json").exists():  # its run failed, and says so; the chapter lists it
            print(f"[lvlmu] {target['name']}: no model to attack (its run failed)", flush=True)
            continue
        try:
            people = () if target["forget"] == "split" else tuple(resolve_forget(world, target["forget"]))
            if fresh:
                shutil.rmtree(target["results_dir"], ignore_errors=True)
            run_attacks(target["model_dir"], world, target["results_dir"], replace(config, forget_people=people), progress=False,
                        replace_stale=True)
            print(f"[lvlmu] {target['name']}: attacked in {time.time() - started:.0f} s", flush=True)
        except Exception as error:  # the failure is a result to report; the other models go on
            failed[f"{target['name']} (attacks)"] = "".join(traceback.format_exception(error)[-8:])
            print(f"[lvlmu] {target['name']}: attack FAILED: {error}", flush=True)
    return failed


def _select(job: Job, book_dir: Path, fresh: bool, kernel) -> None:
    """The tuning's choice: every method's setting by the rule of lvlmu.unlearn.tuning, written to the settings file
    (JSON, which the study reads) and beside it as the methods chapter's tuning section (Markdown)."""
    import datetime
    import subprocess

    from .io import write_json
    from .study import choice_versions
    from .unlearn.tuning import TuningPlan, settings_markdown, tune

    spec = job.spec
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True).stdout.strip() or "unknown"
    record = tune(spec["runs"], spec["worlds"], TuningPlan(**spec["plan"]), spec["tuning_world"], commit,
                  datetime.date.today().isoformat())
    record["versions"] = choice_versions(sorted({m for chosen in record["chosen"].values() for m in chosen}))  # read by study.tuned
    out = Path(spec["out"])
    write_json(out, record)
    out.with_suffix(".md").write_text(settings_markdown(record))
    print(f"[lvlmu] chose every method's settings: {out}", flush=True)


def default_kernel() -> str:
    """The project's registered kernel when it exists, else the current interpreter's default kernel."""
    from jupyter_client.kernelspec import find_kernel_specs

    return KERNEL_NAME if KERNEL_NAME in find_kernel_specs() else "python3"


def _chapter(job: Job, book_dir: Path, fresh: bool, kernel: str | None) -> dict:
    """A chapter: its notebook through papermill, into book/notebooks. A chapter none of whose runs has results is a
    page naming them; a chapter whose notebook fails is a page saying so (and the failure is recorded)."""
    from .unlearn.results import has_results

    name, parameters, reads = job.spec["chapter"], job.spec["parameters"], job.spec["reads_runs"]
    if fresh:  # reuse nothing: the results the notebook itself computes go first
        for path in job.spec["owns"]:
            shutil.rmtree(path, ignore_errors=True)
    output = book_dir / "book" / "notebooks" / f"{name}.ipynb"
    if reads is not None:  # the runs it reads, by name
        if not any(has_results(run, book_dir) for run in reads.values()):
            names = ", ".join(f"`{r}`" for r in reads) or "(the grid has none)"
            placeholder_page(output, job.spec["title"], f"This chapter has no results to show: none of the runs it reads has finished. The missing "
                                     f"runs: {names}.\n\nRun the study without `--only` (`python -m lvlmu study`) to make them.")
            return {}
    try:
        execute_notebook(REPO_DIR / "notebooks" / f"{name}.ipynb", output, parameters, kernel or default_kernel())
    except RuntimeError as error:
        last = next((line.strip() for line in reversed(str(error).splitlines()) if line.strip()), "unknown error").replace("`", "'")
        placeholder_page(output, job.spec["title"], f"This chapter's notebook (`{name}`) failed, so it shows no results: `{last}`.\n\n"
                                 "The study's log has the whole traceback; the other chapters ran.")
        return {job.name: str(error)}
    return {}


def execute_notebook(template: Path, output: Path, parameters: dict, kernel: str) -> None:
    """Run a notebook with papermill into `output` (written whole, on success only), in the current directory; tag
    its parameter cells for the book. A failure raises RuntimeError with the failing cell's traceback."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial.ipynb")
    try:
        papermill.execute_notebook(str(template), str(partial), parameters=parameters, kernel_name=kernel, cwd=os.getcwd(),
                                   progress_bar=False, log_output=True)
    except Exception as error:
        raise RuntimeError(f"notebook {template.name} failed; its partly executed copy is {partial}. "
                           f"The traceback:\n{notebook_traceback(error)}") from error
    tag_parameter_cells(partial)
    os.replace(partial, output)


def notebook_traceback(error: Exception, max_lines: int = 40) -> str:
    """The failing cell's traceback as plain text (papermill's error carries it with terminal colours)."""
    import re

    lines = getattr(error, "traceback", None) or str(error).strip().splitlines()
    text = "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines).splitlines()
    return "\n".join(text[-max_lines:])


def tag_parameter_cells(path: Path) -> None:
    """In the book, drop the template's default parameters and collapse the parameters that actually ran."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
    nbformat.write(nb, path)


def placeholder_page(path: Path, title: str, message: str) -> None:
    """In place of a chapter that cannot show results: a page with its title and a warning box, so the book builds."""
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# {title}\n\n:::{{warning}}\n{message}\n:::\n"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)]), path)


def _book(job: Job, book_dir: Path, fresh: bool, kernel) -> None:
    build_book(book_dir)


def build_book(book_dir: Path, warnings_as_errors: bool = True) -> Path:
    """Render the executed notebooks into `book_dir/_build/html` with jupyter-book, offline."""
    import subprocess

    exe = Path(sys.executable).with_name("jupyter-book")
    command = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir), "--path-output", str(book_dir)]
    if warnings_as_errors:
        command.append("-W")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        causes = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line or "Warning:" in line]
        raise RuntimeError("jupyter-book build failed; warnings count as errors. Causes:\n" + "\n".join(causes[-20:] or output.splitlines()[-40:]))
    return book_dir / "_build" / "html"


RUNNERS = {"world": _world, "vision": _vision, "pretrain": _pretrain, "probe": _probe, "reference": _reference,
           "grid": _grid, "attack": _attack, "select": _select, "chapter": _chapter, "book": _book}


def task_command(args) -> int:
    """`python -m lvlmu task`: what the Snakefile's rules run."""
    exit_on_sigterm()  # torch reads its thread count from OMP_NUM_THREADS, which the Snakefile sets per job
    try:
        record = run_task(args.name, Path(args.artifacts), args.key, args.fresh, args.kernel)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"[lvlmu] {args.name}: {error}", file=sys.stderr)
        return 1
    failed = f", {len(record['failed'])} failed: {', '.join(record['failed'])}" if record["failed"] else ""
    print(f"[lvlmu] {record['job']}: done in {record['wall_seconds']:.0f} s{failed}", flush=True)
    return 0
