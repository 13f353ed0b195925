"""The pipeline end to end on a micro world: both notebooks through papermill, the cache, the book build."""
import json
from dataclasses import replace

import nbformat
import pytest

from lvlmu.io import atomic_directory
from lvlmu.probe.suite import ProbeConfig
from lvlmu.study import PROFILES, StudyConfig, get_profile, run_stage, run_study, Stage
from lvlmu.unlearn.grid import UnlearnGrid

from conftest import MICRO_PRETRAIN, MICRO_VISION, MICRO_WORLD

# A grid of three methods (PUBG, so that its chapter is built), one seed, one single-image person, and one run that must fail (its LoRA target matches
# nothing): the failure is reported and the rest goes on.
MICRO_GRID = UnlearnGrid(methods=("graddiff", "idk", "pubg"), seeds=(0,), single_methods=("siu",), single_people=1, steps=2,
                         split_hyperparameters={"idk": {"lora": True, "lora_target": "no_such_module"}},
                         single_hyperparameters={"siu": {"batch_size": 4}}, split_variants={})
MICRO_STUDY = StudyConfig(MICRO_WORLD, MICRO_VISION, replace(MICRO_PRETRAIN, epochs=1), eval_max_per_group=8,
                          probe=ProbeConfig(batch_size=32, n_perturbed=3, perturbations=("flip",)), unlearn=MICRO_GRID)
BASE_STAGES = {"world", "pretrain", "probe"}
GRID_STAGES = {"split-graddiff-seed0", "split-idk-seed0", "split-pubg-seed0", "single-siu-person0-seed0", "methods", "pubg"}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    book = tmp_path_factory.mktemp("study")
    first = run_study(MICRO_STUDY, book_dir=book, log=lambda *_: None)
    return book, first


def test_both_notebooks_execute_and_the_book_builds(study_run):
    book, first = study_run
    assert first["stages"] == {**{s: "ran" for s in BASE_STAGES | GRID_STAGES}, "split-idk-seed0": "failed"}
    assert list(first["failed"]) == ["split-idk-seed0"] and "matches no linear module" in first["failed"]["split-idk-seed0"]
    for name in ("world", "pretrain", "probe", "unlearn", "methods", "pubg"):
        nb = nbformat.read(book / "book" / "notebooks" / f"{name}.ipynb", as_version=4)
        outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
        assert not any(o.output_type == "error" for o in outputs)
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} has no figure"
        injected = [cell for cell in nb.cells if "injected-parameters" in cell.metadata.get("tags", [])]
        assert len(injected) == 1 and "hide-input" in injected[0].metadata["tags"]
        defaults = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
        assert len(defaults) == 1 and "remove-cell" in defaults[0].metadata["tags"]
    manifests = {m: json.loads((book / "artifacts" / "models" / m / "manifest.json").read_text()) for m in ("vision", "base", "oracle")}
    for model in ("base", "oracle"):
        assert manifests[model]["config"]["exclude_roles"] == ([] if model == "base" else ["forget"])
        assert manifests[model]["inputs"]["vision_tower"], "both start from the shared pretrained tower"
        assert (book / "artifacts" / "results" / f"recall_{model}.jsonl").exists()
    assert manifests["oracle"]["steps"] == manifests["base"]["steps"], "the oracle trains as long as the base"
    assert manifests["oracle"]["n_train_examples"] < manifests["base"]["n_train_examples"]
    html = book / "_build" / "html"
    for name in ("base", "oracle", "oracle_seed1"):
        assert (book / "artifacts" / "probes" / name / "summary.json").exists()
    for page in ("index.html", "book/intro.html", "book/notebooks/world.html", "book/notebooks/pretrain.html", "book/notebooks/probe.html"):
        assert (html / page).exists(), page
    pretrain_page = (html / "book" / "notebooks" / "pretrain.html").read_text()
    assert "Traceback" not in pretrain_page and "<img" in pretrain_page
    # The first single-image run is the unlearning chapter; the other runs' notebooks stay with the artifacts.
    assert (book / "artifacts" / "runs" / "split-graddiff-seed0.ipynb").exists()
    unlearned = json.loads((book / "artifacts" / "models" / "unlearned" / "single-siu-person0-seed0" / "manifest.json").read_text())
    assert unlearned["forget_people"] == [first_forget(book)] and unlearned["config"]["images"] == "single"
    methods_page = (html / "book" / "notebooks" / "methods.html").read_text()
    assert "Traceback" not in methods_page and "split-idk-seed0" in methods_page, "the failed run is named as missing"


def first_forget(book) -> str:
    from lvlmu.world import load_world

    return load_world(book / "artifacts" / "world").forget[0].person_id


def test_an_unchanged_stage_is_skipped_and_a_changed_one_reruns(study_run):
    book, _ = study_run
    again = run_study(MICRO_STUDY, book_dir=book, build=False, log=lambda *_: None)
    assert again["stages"] == {**{s: "cached" for s in BASE_STAGES | GRID_STAGES}, "split-idk-seed0": "failed"}
    # The failing run gets a working config, and a finished run a new one: it retrains, and its stale probe results
    # are replaced rather than refused.
    grid = replace(MICRO_GRID, split_hyperparameters={"graddiff": {"learning_rate": 5e-4}})
    changed = replace(MICRO_STUDY, eval_max_per_group=6, unlearn=grid)
    third = run_study(changed, book_dir=book, build=False, log=lambda *_: None)
    assert third["failed"] == {}
    assert third["stages"] == {**{s: "cached" for s in BASE_STAGES | GRID_STAGES}, "pretrain": "ran", "split-idk-seed0": "ran",
                               "split-graddiff-seed0": "ran", "methods": "ran", "pubg": "ran"}
    # The models were reused: their config and world did not change.
    nb = nbformat.read(book / "book" / "notebooks" / "pretrain.ipynb", as_version=4)
    assert "reusing" in "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # A missing output makes its stage run again.
    (book / "artifacts" / "results" / "recall_oracle.jsonl").unlink()
    fourth = run_study(changed, book_dir=book, build=False, log=lambda *_: None)
    assert fourth["stages"] == {**{s: "cached" for s in BASE_STAGES | GRID_STAGES}, "pretrain": "ran"}
    assert (book / "artifacts" / "results" / "recall_oracle.jsonl").exists()
    # Parameters inside the book directory are relative: the rendered book shows no machine paths.
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'world_dir = "artifacts/world"' in injected.source and str(book) not in injected.source


def test_a_failing_notebook_leaves_no_output(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("raise ValueError('boom')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, notebooks / "broken.ipynb")
    with pytest.raises(RuntimeError, match="stage 'broken' failed"):
        run_stage(Stage("broken", {"x": 2}), notebooks, tmp_path, tmp_path / "cache", kernel="python3")
    assert not (tmp_path / "book" / "notebooks" / "broken.ipynb").exists()
    assert not (tmp_path / "cache" / "broken.json").exists()


def test_an_interrupted_directory_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "weights").write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown profile 'huge'.*full.*quick"):
        get_profile("huge")
    assert set(PROFILES) >= {"full", "quick"}
