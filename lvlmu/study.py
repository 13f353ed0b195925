"""The study pipeline: parameterised notebooks run in sequence with papermill, cached by content hash, then the book."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .io import hash_file, hash_json, package_versions, write_json
from .pretrain import PretrainConfig
from .probe.suite import ProbeConfig
from .unlearn.grid import UnlearnGrid
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


def stages(config: StudyConfig, artifacts: Path) -> list[Stage]:
    world_dir, models = artifacts / "world", artifacts / "models"
    return [
        Stage("world", {"world_dir": str(world_dir), "world_config": notebook_parameters(config.world)}, outputs=(str(world_dir / "world.json"),)),
        Stage(
            "pretrain",
            {"world_dir": str(world_dir), "vision_dir": str(models / "vision"), "base_dir": str(models / "base"),
             "oracle_dir": str(models / "oracle"), "results_dir": str(artifacts / "results"),
             "vision_config": notebook_parameters(config.vision), "pretrain_config": notebook_parameters(config.pretrain),
             "eval_max_per_group": config.eval_max_per_group},
            inputs=(str(world_dir / "world.json"),),
            outputs=tuple(str(p) for p in (models / "vision" / "manifest.json", models / "base" / "manifest.json", models / "oracle" / "manifest.json",
                                           artifacts / "results" / "recall_base.jsonl", artifacts / "results" / "recall_oracle.jsonl")),
        ),
        Stage(
            "probe",
            {"world_dir": str(world_dir), "vision_dir": str(models / "vision"),
             "model_dirs": {"base": str(models / "base"), "oracle": str(models / "oracle")},
             "second_oracle_dir": str(models / "oracle_seed1"), "results_dir": str(artifacts / "probes"),
             "pretrain_config": notebook_parameters(config.pretrain), "probe_config": notebook_parameters(config.probe)},
            inputs=tuple(str(p) for p in (world_dir / "world.json", models / "base" / "manifest.json", models / "oracle" / "manifest.json")),
            outputs=tuple(str(artifacts / "probes" / name / "summary.json") for name in ("base", "oracle", "oracle_seed1")),
        ),
        *unlearn_stages(config, artifacts),
    ]


def unlearn_stages(config: StudyConfig, artifacts: Path) -> list[Stage]:
    """One run of the unlearn notebook per grid run (the first single-image run is the book's unlearning chapter),
    then the methods chapter over all of them, and the PUBG chapter when the grid runs PUBG on the forget split."""
    world_dir, models, probes = artifacts / "world", artifacts / "models", artifacts / "probes"
    base_inputs = (str(world_dir / "world.json"), str(models / "base" / "manifest.json"), str(models / "oracle" / "manifest.json"),
                   str(probes / "base" / "summary.json"), str(probes / "oracle" / "summary.json"))
    runs, out, results = config.unlearn.runs(), [], {}
    showcase = next((run.name for run in runs if run.setting == "single"), runs[0].name if runs else None)
    for run in runs:
        run_dir, results_dir = models / "unlearned" / run.name, probes / run.name
        parameters = {"world_dir": str(world_dir), "base_dir": str(models / "base"), "oracle_dir": str(models / "oracle"),
                      "run_name": run.name, "run_dir": str(run_dir), "results_dir": str(results_dir),
                      "reference_results_dir": str(probes), "unlearn_config": notebook_parameters(run.config),
                      "probe_config": notebook_parameters(config.probe)}
        out.append(Stage(run.name, parameters, inputs=base_inputs, template="unlearn", required=False,
                         notebook="book/notebooks/unlearn.ipynb" if run.name == showcase else str(artifacts / "runs" / f"{run.name}.ipynb"),
                         outputs=(str(run_dir / "manifest.json"), str(results_dir / "summary.json"))))
        results[run.name] = {"setting": run.setting, "method": run.label, "seed": run.config.seed, "forget": run.config.forget,
                             "model_dir": str(run_dir), "results_dir": str(results_dir)}
    run_inputs = base_inputs + tuple(str(Path(r["results_dir"]) / "summary.json") for r in results.values())
    out.append(Stage("methods", {"world_dir": str(world_dir), "runs": results, "reference_results_dir": str(probes),
                                 "oracle_dir": str(models / "oracle")}, inputs=run_inputs))
    if any(r["method"] == "pubg" and r["setting"] == "split" for r in results.values()):
        out.append(Stage("pubg", {"world_dir": str(world_dir), "runs": results, "reference_results_dir": str(probes), "method": "pubg"},
                         inputs=run_inputs))
    return out


def source_fingerprint() -> str:
    """A hash of the lvlmu sources: a code change reruns the notebooks that call it."""
    files = sorted(p for p in PACKAGE_DIR.rglob("*.py"))
    return hash_json({str(p.relative_to(PACKAGE_DIR)): hash_file(p) for p in files})


def stage_key(stage: Stage, notebook: Path, book_dir: Path) -> str:
    """Relative input paths are relative to the book directory, where the notebooks run."""
    inputs = {path: hash_file(book_dir / path) if (book_dir / path).exists() else None for path in stage.inputs}
    return hash_json({"notebook": hash_file(notebook), "parameters": stage.parameters, "inputs": inputs, "lvlmu": source_fingerprint()})


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
                                   cwd=str(book_dir), progress_bar=stream_output, log_output=stream_output)
    except Exception as error:
        cause = "\n".join(str(error).strip().splitlines()[-12:])
        raise RuntimeError(f"stage {stage.name!r} failed; its partly executed notebook is {partial}. The error:\n{cause}") from error
    tag_parameter_cells(partial)
    os.replace(partial, output)
    write_json(record_path, {"key": key, "stage": stage.name, "parameters": stage.parameters,
                             "wall_seconds": time.time() - started, "versions": package_versions()})
    return "ran"


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


def run_study(config: StudyConfig | str = "full", book_dir: str | os.PathLike = REPO_DIR, artifacts: str | os.PathLike | None = None,
              notebooks_dir: str | os.PathLike = REPO_DIR / "notebooks", build: bool = True, force: bool = False,
              kernel: str | None = None, log=print, stream_output: bool = False) -> dict:
    """Run every stage (skipping unchanged ones), then build the book. Returns what ran, what failed (runs of the
    grid may fail without stopping the rest) and where the book is."""
    config = get_profile(config) if isinstance(config, str) else config
    book_dir = Path(book_dir).resolve()
    if book_dir != REPO_DIR and not (book_dir / "_config.yml").exists():
        stage_book_sources(book_dir)
    artifacts = Path(artifacts).resolve() if artifacts is not None else book_dir / "artifacts"
    kernel = kernel or default_kernel()
    report = {"stages": {}, "book": None}
    # Notebooks run with the book directory as their working directory: paths inside it are passed relative,
    # so the rendered parameters read "artifacts/world", not this machine's absolute path.
    artifacts_param = Path(os.path.relpath(artifacts, book_dir)) if artifacts.is_relative_to(book_dir) else artifacts
    failed = {}
    for stage in stages(config, artifacts_param):
        started = time.time()
        log(f"[lvlmu] stage {stage.name}: running" if force else f"[lvlmu] stage {stage.name}: checking cache")
        try:
            status = run_stage(stage, Path(notebooks_dir), book_dir, artifacts / "cache", kernel, force=force, stream_output=stream_output)
        except RuntimeError as error:
            if stage.required:
                raise
            failed[stage.name], status = str(error), "failed"
            log(f"[lvlmu] stage {stage.name}: FAILED, going on with the rest: {error}")
        report["stages"][stage.name] = status
        log(f"[lvlmu] stage {stage.name}: {status} ({time.time() - started:.0f} s)")
    report["failed"] = failed
    if build:
        started = time.time()
        report["book"] = str(build_book(book_dir))
        log(f"[lvlmu] book built in {time.time() - started:.0f} s: {report['book']}/index.html")
    if failed:
        log(f"[lvlmu] {len(failed)} run(s) FAILED; the rest ran, and the book lists them as missing:\n"
            + "\n".join(f"  {name}: {why}" for name, why in failed.items()))
    return report

