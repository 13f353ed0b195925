"""The pipeline end to end on a micro world: both notebooks through papermill, the cache, the book build."""
import json
import tempfile
from dataclasses import replace

import nbformat
import pytest
from bs4 import BeautifulSoup

from lvlmu.io import atomic_directory
from lvlmu.probe.suite import ProbeConfig
from lvlmu.study import PROFILES, StudyConfig, get_profile, run_stage, run_study, Stage
from lvlmu.unlearn.grid import UnlearnGrid

from conftest import MICRO_PRETRAIN, MICRO_VISION, MICRO_WORLD

# A grid of three methods (PUBG, so that its chapter is built), one seed, two methods on one single-image person (the
# second waits for the first's reference probes), and one run that must fail (its LoRA target matches nothing): the
# failure is reported and the rest goes on. Two notebooks run at a time, as in the study.
MICRO_GRID = UnlearnGrid(methods=("graddiff", "idk", "pubg"), seeds=(0,), single_methods=("siu", "graddiff"), single_people=1, steps=2,
                         split_hyperparameters={"idk": {"lora": True, "lora_target": "no_such_module"}},
                         single_hyperparameters={"siu": {"batch_size": 4}}, split_variants={})
MICRO_STUDY = StudyConfig(MICRO_WORLD, MICRO_VISION, replace(MICRO_PRETRAIN, epochs=1), eval_max_per_group=8,
                          probe=ProbeConfig(batch_size=32, n_perturbed=3, perturbations=("flip",)), unlearn=MICRO_GRID, jobs=2)
# The same study with a changed probe budget and a finished run's learning rate changed (the cache test switches to it).
CHANGED_STUDY = replace(MICRO_STUDY, eval_max_per_group=6, unlearn=replace(MICRO_GRID, split_hyperparameters={"graddiff": {"learning_rate": 5e-4}}))
BASE_STAGES = {"world", "pretrain", "probe", "adapt", "rerun"}
GRID_STAGES = {"split-graddiff-seed0", "split-idk-seed0", "split-pubg-seed0", "single-siu-person0-seed0", "single-graddiff-person0-seed0",
               "compare", "pubg", "claims", "intro"}
CHAPTERS = ("intro", "world", "pretrain", "probe", "unlearn", "compare", "pubg", "claims", "adapt", "rerun")
TABLES_ONLY = ("intro", "claims", "rerun")


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    book = tmp_path_factory.mktemp("study")
    first = run_study(MICRO_STUDY, book_dir=book, log=lambda *_: None)
    return book, first


def test_both_notebooks_execute_and_the_book_builds(study_run):
    book, first = study_run
    assert first["stages"] == {**{s: "ran" for s in BASE_STAGES | GRID_STAGES}, "split-idk-seed0": "failed"}
    assert list(first["failed"]) == ["split-idk-seed0"] and "matches no linear module" in first["failed"]["split-idk-seed0"]
    for name in CHAPTERS:
        nb = nbformat.read(book / "book" / "notebooks" / f"{name}.ipynb", as_version=4)
        outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
        assert not any(o.output_type == "error" for o in outputs)
        if name not in TABLES_ONLY:
            assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} has no figure"
        for cell in nb.cells:  # every figure has a caption
            if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
                assert cell.metadata.get("mystnb", {}).get("figure", {}).get("caption"), f"{name}: a figure without caption"
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
    for page in ("index.html", "book/notebooks/intro.html", "book/methods.html", "book/limitations.html", "book/notebooks/rerun.html", "book/notebooks/world.html", "book/notebooks/pretrain.html", "book/notebooks/probe.html"):
        assert (html / page).exists(), page
    pretrain_page = (html / "book" / "notebooks" / "pretrain.html").read_text()
    assert "Traceback" not in pretrain_page and "<img" in pretrain_page
    # The first single-image run is the unlearning chapter; the other runs' notebooks stay with the artifacts.
    assert (book / "artifacts" / "runs" / "split-graddiff-seed0.ipynb").exists()
    unlearned = json.loads((book / "artifacts" / "models" / "unlearned" / "single-siu-person0-seed0" / "manifest.json").read_text())
    assert unlearned["forget_people"] == [first_forget(book)] and unlearned["config"]["images"] == "single"
    compare_page = (html / "book" / "notebooks" / "compare.html").read_text()
    assert "Traceback" not in compare_page and "split-idk-seed0" in compare_page, "the failed run is named as missing"
    # The other runs ran the short template; their notebooks stay with the artifacts.
    assert (book / "artifacts" / "runs" / "single-graddiff-person0-seed0.ipynb").exists()
    # The adapt template ran on the example concept folder that the world chapter wrote: probed before and after.
    assert (book / "artifacts" / "concepts" / "example" / "concept.yaml").exists()
    adapt_page = (html / "book" / "notebooks" / "adapt.html").read_text()
    for text in ("name leak: unseen images", "before", "after", "LLaVA-1.5-13B", "estimate"):
        assert text in adapt_page, text
    adapted = json.loads((book / "artifacts" / "adapt" / "unlearned" / "manifest.json").read_text())
    assert adapted["method"] == "siu" and adapted["config"]["images"] == "single"
    # The re-run page shows where the models were computed: fp32 on this CPU, the capability its manifests recorded.
    rerun_page = (html / "book" / "notebooks" / "rerun.html").read_text()
    # The environment table: one column per machine setting, one row heading per field.
    table = next(t for t in BeautifulSoup(rerun_page, "html.parser").find_all("table")
                 if any(th.get_text(strip=True) == "CPU capability" for th in t.find_all("th", class_="row_heading")))
    fields = {row.th.get_text(strip=True): [cell.get_text(strip=True) for cell in row.find_all("td")] for row in table.find_all("tr") if row.th}
    runtime = manifests["base"]["runtime"]
    assert runtime["precision"] == "fp32" and set(fields["precision"]) == {"fp32"}
    assert set(fields["CPU capability"]) == {runtime["cpu_capability"]} and "torch threads" in fields
    assert "Traceback" not in rerun_page


def test_the_book_renders_in_headless_chromium(study_run):
    """Every chapter loads in a real browser, offline, with its figures (each captioned) and no Python traceback."""
    book, _ = study_run
    html = book / "_build" / "html"
    for name in CHAPTERS:
        page = html / "book" / "notebooks" / f"{name}.html"
        dom = BeautifulSoup(render_in_chromium(page), "html.parser")
        main = dom.find("main") or dom
        assert main.find("h1"), f"{name} did not load"
        assert "Traceback" not in main.get_text(), f"{name} shows a Python traceback"
        images = main.find_all("img")
        if name not in TABLES_ONLY:
            assert images, f"{name} shows no figure"
        for image in images:
            figure = image.find_parent("figure")
            assert figure is not None and figure.find("figcaption") and figure.find("figcaption").get_text(strip=True), f"{name}: uncaptioned figure"
    for page in ("methods", "limitations", "adapt"):
        dom = BeautifulSoup(render_in_chromium(html / "book" / f"{page}.html"), "html.parser")
        assert (dom.find("main") or dom).find("h1"), f"{page} did not load"


def render_in_chromium(page) -> str:
    """The DOM of a local page after Chromium has loaded it, headless and without network."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Chromium is missing: `make test` installs Debian's chromium package (apt-get install chromium)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--virtual-time-budget=3000"]
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([browser, *flags, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip(), f"Chromium could not load {page}: {result.stderr[-2000:]}"
    return result.stdout


def first_forget(book) -> str:
    from lvlmu.world import load_world

    return load_world(book / "artifacts" / "world").forget[0].person_id


def test_an_unchanged_stage_is_skipped_and_a_changed_one_reruns(study_run):
    book, _ = study_run
    again = run_study(MICRO_STUDY, book_dir=book, build=False, log=lambda *_: None)
    assert again["stages"] == {**{s: "cached" for s in BASE_STAGES | GRID_STAGES}, "split-idk-seed0": "failed"}
    # The failing run gets a working config, and a finished run a new one: it retrains, and its stale probe results
    # are replaced rather than refused.
    third = run_study(CHANGED_STUDY, book_dir=book, build=False, log=lambda *_: None)
    assert third["failed"] == {}
    assert third["stages"] == {**{s: "cached" for s in BASE_STAGES | GRID_STAGES}, "pretrain": "ran", "split-idk-seed0": "ran",
                               "split-graddiff-seed0": "ran", "single-graddiff-person0-seed0": "ran",  # at the split's settings, batch 8
                               **{c: "ran" for c in ("compare", "pubg", "claims", "intro", "rerun")}}
    # The models were reused: their config and world did not change.
    nb = nbformat.read(book / "book" / "notebooks" / "pretrain.ipynb", as_version=4)
    assert "reusing" in "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # A missing output makes its stage run again.
    (book / "artifacts" / "results" / "recall_oracle.jsonl").unlink()
    fourth = run_study(CHANGED_STUDY, book_dir=book, build=False, log=lambda *_: None)
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
    with pytest.raises(RuntimeError, match="stage 'broken' failed") as failure:
        run_stage(Stage("broken", {"x": 2}), notebooks, tmp_path, tmp_path / "cache", kernel="python3")
    # The log shows the failing cell's traceback, without terminal colours.
    assert "raise ValueError('boom')" in str(failure.value) and "ValueError: boom" in str(failure.value)
    assert "\x1b[" not in str(failure.value)
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


def test_the_claims_page_reads_its_numbers_from_the_results(study_run):
    """Change one run's stored results: the claims page, rebuilt, shows the new figure."""
    book, _ = study_run
    summary_path = book / "artifacts" / "probes" / "split-pubg-seed0" / "summary.json"
    original = summary_path.read_text()
    data = json.loads(original)
    for condition in ("identity", "open query"):
        data["metrics"]["aftermath"]["summary"][condition]["leak"] = 0.4321
    page = book / "_build" / "html" / "book" / "notebooks" / "claims.html"
    assert "43.2%" not in page.read_text()
    try:
        summary_path.write_text(json.dumps(data))
        report = run_study(CHANGED_STUDY, book_dir=book, log=lambda *_: None)
        assert report["stages"]["claims"] == "ran" and report["stages"]["split-pubg-seed0"] == "cached"
        assert "leak (name or private fact) 43.2% of answers" in page.read_text()
    finally:
        summary_path.write_text(original)


def test_only_runs_one_method_and_a_chapter_without_results_names_its_missing_runs(study_run):
    book, _ = study_run
    results = book / "artifacts" / "probes" / "split-pubg-seed0"
    moved = results.with_name("split-pubg-seed0.kept")
    results.rename(moved)
    try:
        report = run_study(CHANGED_STUDY, book_dir=book, build=False, log=lambda *_: None, only="graddiff")
        assert "split-pubg-seed0" not in report["stages"] and "split-idk-seed0" not in report["stages"], "only graddiff's runs"
        assert {"split-graddiff-seed0", "single-graddiff-person0-seed0"} <= set(report["stages"])
        assert report["stages"]["pubg"] == "no results" and report["missing"] == ["split-pubg-seed0"]
        page = nbformat.read(book / "book" / "notebooks" / "pubg.ipynb", as_version=4)
        assert "split-pubg-seed0" in page.cells[0].source and "no results" in page.cells[0].source
    finally:
        moved.rename(results)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        run_study(CHANGED_STUDY, book_dir=book, build=False, log=lambda *_: None, only="nope")


def test_a_failed_chapter_becomes_a_page_that_says_so(tmp_path):
    from lvlmu.study import failed_chapter_page

    stage = Stage("adapt", {}, required=False)
    failed_chapter_page(stage, tmp_path, "Traceback ...\n  File x\nValueError: the concept `x` has no images\n")
    page = nbformat.read(tmp_path / "book" / "notebooks" / "adapt.ipynb", as_version=4)
    text = page.cells[0].source
    assert text.startswith("# Your own model and concepts") and ":::{warning}" in text
    assert "ValueError: the concept 'x' has no images" in text and "`adapt`" in text
