"""The study pipeline: parameterised notebooks run in sequence with papermill, cached by content hash, then the book."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .io import hash_file, hash_json, package_versions, write_json
from .kernels import ENGINE_NAME, close_warm_kernels
from .numerics import isa_variables
from .pretrain import PretrainConfig
from .probe.suite import ProbeConfig
from .unlearn.grid import UnlearnGrid
from .unlearn.results import has_results
from .vision import VisionPretrainConfig
from .world import WorldConfig

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
KERNEL_NAME = "lvlmu"


@dataclass(frozen=True)
class StudyConfig:
    """Everything the pipeline's numbers depend on."""

    world: WorldConfig = field(default_factory=WorldConfig)
    vision: VisionPretrainConfig = field(default_factory=VisionPretrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval_max_per_group: int = 200
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    unlearn: UnlearnGrid = field(default_factory=UnlearnGrid)
    # How many notebooks run at once where their needs allow (the grid's runs, the chapters), one thread each.
    jobs: int = 2


PROFILES: dict[str, StudyConfig] = {
    "full": StudyConfig(),
    # A first look in a few minutes: fewer people, shorter training. Its numbers are not the study's.
    "quick": StudyConfig(WorldConfig(n_known=20, n_strangers=300, n_holdout=10, n_scenes=200), VisionPretrainConfig(epochs=15),
                         PretrainConfig(epochs=2), 50, unlearn=UnlearnGrid(seeds=(0,), single_people=1, steps=10, split_variants={})),
}


@dataclass(frozen=True)
class Stage:
    """One notebook run: its template, its parameters, and the files whose content it depends on."""

    name: str
    parameters: dict
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # a stage whose outputs are missing runs again, whatever its cache says
    template: str = ""  # the notebook it executes, by name; default: the stage's name
    notebook: str = ""  # where the executed notebook goes; default: the book's chapter of that name
    required: bool = True  # a failure stops the pipeline; otherwise it is reported at the end and the rest goes on
    needs: tuple[str, ...] = ()  # stages that must finish (or fail, if not required) before this one starts
    threads: int = 2  # torch threads of its kernel; stages that may run side by side take one each
    # A chapter over grid runs: the runs it reads. When none has results, the chapter is a page naming them instead.
    reads_runs: tuple[str, ...] | None = None
    # Run in a kernel kept from the previous notebook of this process (namespace cleared): saves the kernel start and
    # imports, seconds that add up over the grid's many short runs. The book's chapters each get a fresh kernel.
    warm_kernel: bool = False

    @property
    def template_name(self) -> str:
        return self.template or self.name

    @property
    def notebook_path(self) -> str:
        return self.notebook or f"book/notebooks/{self.name}.ipynb"


def get_profile(name: str) -> StudyConfig:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; the profiles are {sorted(PROFILES)}")
    return PROFILES[name]


def notebook_parameters(config) -> dict:
    """A config as papermill can inject it: JSON types only (papermill would turn a tuple into its string)."""
    return json.loads(json.dumps(asdict(config)))


BENCHMARK_RECORDS = ("cross-cpu-quick.json", "throughput-avx512.json", "throughput-avx2.json")  # what the re-run page reads


def stages(config: StudyConfig, artifacts: Path, benchmarks: Path = REPO_DIR / "benchmarks" / "results") -> list[Stage]:
    """Every stage of the study, its paths under `artifacts`; `benchmarks` holds the recorded benchmarks."""
    world_dir, models, concept_dir = artifacts / "world", artifacts / "models", artifacts / "concepts" / "example"
    return [
        Stage("world", {"world_dir": str(world_dir), "world_config": notebook_parameters(config.world), "concept_dir": str(concept_dir)},
              outputs=(str(world_dir / "world.json"), str(concept_dir / "concept.yaml"))),
        Stage(
            "pretrain",
            {"world_dir": str(world_dir), "vision_dir": str(models / "vision"), "base_dir": str(models / "base"),
             "oracle_dir": str(models / "oracle"), "results_dir": str(artifacts / "results"),
             "vision_config": notebook_parameters(config.vision), "pretrain_config": notebook_parameters(config.pretrain),
             "eval_max_per_group": config.eval_max_per_group, "probe_results_dir": str(artifacts / "probes"),
             "probe_config": notebook_parameters(config.probe)},
            inputs=(str(world_dir / "world.json"),),
            outputs=tuple(str(p) for p in (models / "vision" / "manifest.json", models / "base" / "manifest.json", models / "oracle" / "manifest.json",
                                           artifacts / "results" / "recall_base.jsonl", artifacts / "results" / "recall_oracle.jsonl",
                                           artifacts / "probes" / "base" / "summary.json", artifacts / "probes" / "oracle" / "summary.json")),
            needs=("world",), threads=config.vision.threads,  # alone: the tower trains on every thread, then base and oracle side by side
        ),
        Stage(
            "probe",
            {"world_dir": str(world_dir), "vision_dir": str(models / "vision"),
             "model_dirs": {"base": str(models / "base"), "oracle": str(models / "oracle")},
             "second_oracle_dir": str(models / "oracle_seed1"), "results_dir": str(artifacts / "probes"),
             "pretrain_config": notebook_parameters(config.pretrain), "probe_config": notebook_parameters(config.probe)},
            inputs=tuple(str(p) for p in (world_dir / "world.json", models / "base" / "manifest.json", models / "oracle" / "manifest.json")),
            outputs=tuple(str(artifacts / "probes" / name / "summary.json") for name in ("base", "oracle", "oracle_seed1")),
            # Its second oracle trains beside the grid's first runs, which need only the pretrain stage's probes.
            needs=("pretrain",), threads=config.pretrain.threads,
        ),
        *unlearn_stages(config, artifacts),
        adapt_stage(config, artifacts),
        rerun_stage(config, artifacts, benchmarks),
    ]


def rerun_stage(config: StudyConfig, artifacts: Path, benchmarks: Path) -> Stage:
    """The re-run page: where this build's models were computed (their manifests), and the recorded benchmarks of
    precision and of numbers across CPUs. It runs last, beside the chapters."""
    models = artifacts / "models"
    model_dirs = {name: str(models / name) for name in ("vision", "base", "oracle", "oracle_seed1")}
    model_dirs |= {name: run["model_dir"] for name, run in grid_runs(config, artifacts).items()}
    model_dirs["adapt"] = str(artifacts / "adapt" / "unlearned")
    records = [str(benchmarks / name) for name in BENCHMARK_RECORDS]
    return Stage("rerun", {"model_dirs": model_dirs, "cross_cpu_record": records[0], "throughput_records": records[1:]},
                 inputs=tuple(str(Path(d) / "manifest.json") for d in model_dirs.values()) + tuple(records),
                 needs=("probe", "adapt", *grid_runs(config, artifacts)), threads=1, required=False)


def adapt_stage(config: StudyConfig, artifacts: Path) -> Stage:
    """The adapt template on the example concept folder and the tiny base model, with SIU's single-image settings of
    the grid; it runs beside the grid, on one thread."""
    settings = {"method": "siu", "images": "single", "steps": config.unlearn.steps, "threads": config.unlearn.threads,
                **config.unlearn.single_overrides("siu")}
    return Stage("adapt", {"model_dir": str(artifacts / "models" / "base"), "concept_dir": str(artifacts / "concepts" / "example"),
                           "out_dir": str(artifacts / "adapt" / "unlearned"), "results_dir": str(artifacts / "adapt" / "probes"),
                           "unlearn_config": settings, "probe_config": notebook_parameters(config.probe)},
                 inputs=(str(artifacts / "concepts" / "example" / "concept.yaml"), str(artifacts / "models" / "base" / "manifest.json")),
                 outputs=(str(artifacts / "adapt" / "probes" / "after" / "summary.json"),),
                 needs=("world", "pretrain"), threads=1, required=False)


def grid_runs(config: StudyConfig, artifacts: Path) -> dict[str, dict]:
    """Each run of the grid as the chapters read it: setting, method, seed, forget, and where its model and results lie."""
    models, probes = artifacts / "models", artifacts / "probes"
    return {run.name: {"setting": run.setting, "method": run.label, "seed": run.config.seed, "forget": run.config.forget,
                       "model_dir": str(models / "unlearned" / run.name), "results_dir": str(probes / run.name)}
            for run in config.unlearn.runs()}


def unlearn_stages(config: StudyConfig, artifacts: Path) -> list[Stage]:
    """One notebook run per grid run (the first single-image run is the book's unlearning chapter; the others run a
    shorter template whose notebooks stay with the artifacts), then the chapters that read them all."""
    world_dir, models, probes = artifacts / "world", artifacts / "models", artifacts / "probes"
    base_inputs = (str(world_dir / "world.json"), str(models / "base" / "manifest.json"), str(models / "oracle" / "manifest.json"),
                   str(probes / "base" / "summary.json"), str(probes / "oracle" / "summary.json"))
    runs, out = config.unlearn.runs(), []
    results = grid_runs(config, artifacts)
    # The unlearning chapter shows SIU in its own setting when the grid has it.
    singles = [run for run in runs if run.setting == "single"]
    showcase = next((run.name for run in singles if run.label == "siu"), (singles or runs)[0].name if runs else None)
    first_on_people: dict = {}
    for run in runs:
        run_dir, results_dir = models / "unlearned" / run.name, probes / run.name
        parameters = {"world_dir": str(world_dir), "base_dir": str(models / "base"), "oracle_dir": str(models / "oracle"),
                      "run_name": run.name, "run_dir": str(run_dir), "results_dir": str(results_dir),
                      "reference_results_dir": str(probes), "unlearn_config": notebook_parameters(run.config),
                      "probe_config": notebook_parameters(config.probe)}
        # The first run on a set of people probes the base and the oracle on them; the others wait for it rather than
        # race it to write the same reference results.
        first = first_on_people.setdefault(run.config.forget, run.name)
        needs = ("pretrain",) if first == run.name or run.config.forget == "split" else ("pretrain", first)
        showcased = run.name == showcase
        out.append(Stage(run.name, parameters, inputs=base_inputs, template="unlearn" if showcased else "run", required=False,
                         notebook="book/notebooks/unlearn.ipynb" if showcased else str(artifacts / "runs" / f"{run.name}.ipynb"),
                         outputs=(str(run_dir / "manifest.json"), str(results_dir / "summary.json")), needs=needs,
                         threads=config.unlearn.threads, warm_kernel=not showcased))
    run_inputs = base_inputs + tuple(str(Path(r["results_dir"]) / "summary.json") for r in results.values())
    chapter = {"world_dir": str(world_dir), "runs": results, "reference_results_dir": str(probes)}
    grid_names = tuple(results)
    pubg_runs = tuple(name for name, r in results.items() if r["method"] == "pubg" and r["setting"] == "split")
    chapters = [
        Stage("compare", {**chapter, "oracle_dir": str(models / "oracle")}, inputs=run_inputs, reads_runs=grid_names),
        Stage("pubg", {**chapter, "method": "pubg"}, inputs=run_inputs, reads_runs=pubg_runs),
        Stage("claims", chapter, inputs=run_inputs, reads_runs=grid_names),
        Stage("intro", chapter, inputs=run_inputs, reads_runs=grid_names),
    ]
    # Chapters run side by side after every run, one thread each; a chapter that fails is reported like a run.
    return out + [replace(stage, needs=(*grid_names, "probe"), threads=1, required=False) for stage in chapters]


def source_fingerprint() -> str:
    """A hash of the lvlmu sources: a code change reruns the notebooks that call it."""
    files = sorted(p for p in PACKAGE_DIR.rglob("*.py"))
    return hash_json({str(p.relative_to(PACKAGE_DIR)): hash_file(p) for p in files})


def stage_key(stage: Stage, notebook: Path, book_dir: Path) -> str:
    """Relative input paths are relative to the book directory, where the notebooks run. The instruction-set
    variables count too: a run held to AVX2 and one without compute different bits."""
    inputs = {path: hash_file(book_dir / path) if (book_dir / path).exists() else None for path in stage.inputs}
    return hash_json({"notebook": hash_file(notebook), "parameters": stage.parameters, "inputs": inputs, "lvlmu": source_fingerprint(),
                      "numerics": isa_variables()})


def default_kernel() -> str:
    """The project's registered kernel when it exists, else the current interpreter's default kernel."""
    from jupyter_client.kernelspec import find_kernel_specs

    return KERNEL_NAME if KERNEL_NAME in find_kernel_specs() else "python3"


def run_stage(stage: Stage, notebooks_dir: Path, book_dir: Path, cache_dir: Path, kernel: str, force: bool = False,
              stream_output: bool = False) -> str:
    """Execute one notebook unless its cache key is unchanged. Returns "ran" or "cached"."""
    import papermill

    template = notebooks_dir / f"{stage.template_name}.ipynb"
    if not template.exists():
        raise FileNotFoundError(f"no notebook template {template}")
    output = book_dir / stage.notebook_path
    record_path = cache_dir / f"{stage.name}.json"
    key = stage_key(stage, template, book_dir)
    outputs_exist = output.exists() and all((book_dir / path).exists() for path in stage.outputs)
    if not force and outputs_exist and record_path.exists() and json.loads(record_path.read_text()).get("key") == key:
        return "cached"
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial.ipynb")
    started = time.time()
    try:
        papermill.execute_notebook(str(template), str(partial), parameters=stage.parameters, kernel_name=kernel,
                                   cwd=str(book_dir), progress_bar=stream_output, log_output=stream_output,
                                   engine_name=ENGINE_NAME if stage.warm_kernel else None)
    except Exception as error:
        raise RuntimeError(f"stage {stage.name!r} failed; its partly executed notebook is {partial}. "
                           f"The traceback:\n{notebook_traceback(error)}") from error
    tag_parameter_cells(partial)
    os.replace(partial, output)
    write_json(record_path, {"key": key, "stage": stage.name, "parameters": stage.parameters,
                             "wall_seconds": time.time() - started, "versions": package_versions()})
    return "ran"


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


def build_book(book_dir: Path, warnings_as_errors: bool = True) -> Path:
    """Render the executed notebooks into `book_dir/_build/html` with jupyter-book, offline."""
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


def stage_book_sources(book_dir: Path) -> None:
    """Copy the book's fixed sources (config, table of contents, prose pages) into another book directory."""
    book_dir.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO_DIR / name, book_dir / name)
    (book_dir / "book").mkdir(exist_ok=True)
    for page in (REPO_DIR / "book").glob("*.md"):
        shutil.copy2(page, book_dir / "book" / page.name)


CHAPTER_TITLES = {"rerun": "Re-running and adapting the study", "pubg": "PUBG against the baselines", "compare": "Every method compared", "claims": "The papers' claims, checked",
                  "intro": "Unlearning in vision-language models", "unlearn": "Unlearning a person from one image",
                  "adapt": "Your own model and concepts"}


def placeholder_page(stage: Stage, book_dir: Path, message: str) -> None:
    """In place of a chapter that cannot show results: a page with its title and a warning box, so the book builds."""
    import nbformat

    path = book_dir / stage.notebook_path
    title = CHAPTER_TITLES.get(path.stem, path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# {title}\n\n:::{{warning}}\n{message}\n:::\n"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)]), path)


def missing_results_page(stage: Stage, book_dir: Path) -> None:
    """A chapter none of whose runs has results becomes a page that names them, instead of empty tables."""
    names = ", ".join(f"`{name}`" for name in stage.reads_runs) or "(the grid has none)"
    placeholder_page(stage, book_dir, f"This chapter has no results to show: none of the runs it reads has finished. "
                                      f"The missing runs: {names}.\n\nRun the study without `--only` (`python -m lvlmu study`) to make them.")


def failed_chapter_page(stage: Stage, book_dir: Path, error: str) -> None:
    """A book chapter whose notebook failed becomes a page that says so and gives the error's last line."""
    last = next((line.strip() for line in reversed(error.splitlines()) if line.strip()), "unknown error").replace("`", "'")
    placeholder_page(stage, book_dir, f"This chapter's notebook (`{stage.name}`) failed, so it shows no results: `{last}`.\n\n"
                                      "The pipeline's log has the whole traceback; the other chapters ran.")


def _execute(stage: Stage, notebooks_dir: Path, book_dir: Path, cache_dir: Path, kernel: str, force: bool, stream_output: bool) -> tuple[str, str, float]:
    """Run one stage with its thread count (the kernel inherits the environment); returns (status, error, seconds)."""
    started = time.time()
    os.environ["LVLMU_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(stage.threads)
    try:
        return run_stage(stage, notebooks_dir, book_dir, cache_dir, kernel, force, stream_output), "", time.time() - started
    except RuntimeError as error:
        return "failed", str(error), time.time() - started


def run_study(config: StudyConfig | str = "full", book_dir: str | os.PathLike = REPO_DIR, artifacts: str | os.PathLike | None = None,
              notebooks_dir: str | os.PathLike = REPO_DIR / "notebooks", build: bool = True, force: bool = False,
              kernel: str | None = None, log=print, stream_output: bool = False, jobs: int | None = None,
              only: str | None = None) -> dict:
    """Run every stage (skipping unchanged ones), `jobs` at a time where their needs allow, then build the book.

    Returns what ran, what failed (runs of the grid and chapters may fail without stopping the rest), which runs have
    no results, and where the book is. `only` runs the grid runs of one method and leaves the others as they are.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    config = get_profile(config) if isinstance(config, str) else config
    jobs = jobs or config.jobs
    book_dir = Path(book_dir).resolve()
    if book_dir != REPO_DIR:  # every time: the book's sources may have changed since the last build
        stage_book_sources(book_dir)
    artifacts = Path(artifacts).resolve() if artifacts is not None else book_dir / "artifacts"
    kernel = kernel or default_kernel()
    # Notebooks run with the book directory as their working directory: paths inside it are passed relative,
    # so the rendered parameters read "artifacts/world", not this machine's absolute path.
    artifacts_param = Path(os.path.relpath(artifacts, book_dir)) if artifacts.is_relative_to(book_dir) else artifacts
    benchmarks = REPO_DIR / "benchmarks" / "results"
    all_stages = stages(config, artifacts_param, Path(os.path.relpath(benchmarks, book_dir)) if benchmarks.is_relative_to(book_dir) else benchmarks)
    runs = grid_runs(config, artifacts_param)
    if only is not None:
        kept = {run.name for run in config.unlearn.only(only).runs()}
        all_stages = [s for s in all_stages if s.name not in runs or s.name in kept]
    names = {s.name for s in all_stages}
    pending = {s.name: replace(s, needs=tuple(n for n in s.needs if n in names)) for s in all_stages}
    report, failed, done = {"stages": {}, "book": None}, {}, set()
    common = (Path(notebooks_dir), book_dir, artifacts / "cache", kernel, force)
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) if jobs > 1 else None
    running = {}
    try:
        while pending or running:
            ready = [s for s in pending.values() if all(n in done for n in s.needs)]
            for stage in ready:
                alone = pool is None or stage.threads > 1  # such a stage runs by itself, in this process, streaming its output
                if len(running) >= jobs or (alone and running):
                    continue
                del pending[stage.name]
                if stage.reads_runs is not None and not any(has_results(runs[name], book_dir) for name in stage.reads_runs if name in runs):
                    missing_results_page(stage, book_dir)
                    (artifacts / "cache" / f"{stage.name}.json").unlink(missing_ok=True)  # the real chapter runs once results exist
                    report["stages"][stage.name] = "no results"
                    done.add(stage.name)
                    log(f"[lvlmu] stage {stage.name}: none of its runs has results; the book shows a page naming them")
                    continue
                log(f"[lvlmu] stage {stage.name}: starting")
                running[stage.name] = (stage, _execute(stage, *common, stream_output) if alone else pool.submit(_execute, stage, *common, False))
                if alone:
                    break
            if not running:
                if pending and not any(all(n in done for n in s.needs) for s in pending.values()):
                    raise RuntimeError(f"stages whose needs can never finish: {sorted(pending)}")
                continue
            futures = [value for _, value in running.values() if not isinstance(value, tuple)]
            if futures and len(futures) == len(running):
                wait(futures, return_when=FIRST_COMPLETED)
            for name in [n for n, (_, v) in running.items() if isinstance(v, tuple) or v.done()]:
                stage, result = running.pop(name)
                status, error, seconds = result if isinstance(result, tuple) else result.result()
                done.add(name)
                report["stages"][name] = status
                count = f"[{len(done)}/{len(all_stages)}]"
                if status == "failed":
                    if stage.required:
                        raise RuntimeError(error)
                    failed[name] = error
                    if stage.notebook_path.startswith("book/"):  # a chapter: the book shows a page saying it failed
                        failed_chapter_page(stage, book_dir, error)
                        (artifacts / "cache" / f"{name}.json").unlink(missing_ok=True)
                    log(f"[lvlmu] {count} stage {name}: FAILED after {seconds:.0f} s, going on with the rest:\n{error}")
                else:
                    log(f"[lvlmu] {count} stage {name}: {status} ({seconds:.0f} s)")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        close_warm_kernels()
    report["failed"] = failed
    report["missing"] = [name for name, run in runs.items() if not has_results(run, book_dir)]
    if build:
        started = time.time()
        report["book"] = str(build_book(book_dir))
        log(f"[lvlmu] book built in {time.time() - started:.0f} s: {report['book']}/index.html")
    if failed:
        log(f"[lvlmu] {len(failed)} stage(s) FAILED; the rest ran:\n" + "\n".join(f"  {name}: {why.splitlines()[0]}" for name, why in failed.items()))
    if report["missing"]:
        log(f"[lvlmu] the book lacks the results of {len(report['missing'])} run(s), and its pages say so: " + ", ".join(report["missing"]))
    return report
