"""The study end to end on a micro world through Snakemake: the jobs, their keys, the chapters and the book."""
import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from lvlmu.attack import AttackConfig
from lvlmu.io import atomic_directory
from lvlmu.probe.suite import ProbeConfig
from lvlmu.engine import run_study
from lvlmu.study import StudyConfig, get_profile, plan_jobs, profiles, recorded
from lvlmu.job import read_job
from lvlmu.tasks import execute_notebook, placeholder_page, run_task
from lvlmu.unlearn.grid import UnlearnGrid

from conftest import MICRO_PRETRAIN, MICRO_VISION, MICRO_WORLD

# A grid of three methods (PUBG, so that its chapter is built), one seed, two methods on one single-image person (the
# second waits for the first's reference probes), and one run that must fail (its LoRA target matches nothing): the
# failure is reported and the rest goes on. Two cores, as in the study.
MICRO_GRID = UnlearnGrid(methods=("graddiff", "idk", "pubg"), seeds=(0,), single_methods=("siu", "graddiff"), single_people=1, steps=2,
                         split_hyperparameters={"idk": {"lora": True, "lora_target": "no_such_module"}},
                         single_hyperparameters={"siu": {"batch_size": 4}}, split_variants={},
                         single_variants={"siu-ce-only": {"method": "siu", "weights": {"dmk": 0.0}}},
                         curve_methods=("siu",), curve_baselines=0, curve_steps=(1,))
# Two reporting worlds (1 and 2); the micro world's own seed (3) is the tuning world, where the vision tower trains.
MICRO_STUDY = StudyConfig(MICRO_WORLD, MICRO_VISION, replace(MICRO_PRETRAIN, epochs=1), eval_max_per_group=8,
                          probe=ProbeConfig(batch_size=32, n_perturbed=3, perturbations=("flip",)), unlearn=MICRO_GRID, worlds=(1, 2),
                          attack=AttackConfig(steps=(1, 2), distractors=2, generation_batch_size=32))
# The same study with a changed probe budget and a finished run's learning rate changed (the cache test switches to it).
CHANGED_STUDY = replace(MICRO_STUDY, eval_max_per_group=6, unlearn=replace(MICRO_GRID, split_hyperparameters={"graddiff": {"learning_rate": 5e-4}}))
# The grid's jobs: the forget split's runs in one, the steps curve's in one, the single-image runs per method, and the
# single-image variants by kind.
WORLD_JOBS = {"world", "base", "oracle", "probe-base", "probe-oracle", "references", "grid-split", "grid-single-siu",
              "grid-single-graddiff", "grid-single-ablations", "grid-single-augmented", "grid-curve", "attack-references",
              "attack-split", "attack-single"}
BASE_JOBS = {"w3-world", "vision", "w1-oracle_seed1", "w1-probe-oracle_seed1"} | {f"{w}-{j}" for w in ("w1", "w2") for j in WORLD_JOBS
                                                                                  if "grid" not in j and "attack" not in j}
GRID_JOBS = {f"{w}-{j}" for w in ("w1", "w2") for j in WORLD_JOBS if "grid" in j or "attack" in j}
IDK = {"w1-grid-split": "ran with failures", "w2-grid-split": "ran with failures"}
CHAPTER_JOBS = {f"chapter-{c}" for c in ("world", "pretrain", "probe", "unlearn", "compare", "pubg", "attacks", "claims", "intro", "adapt", "rerun")}
EVERY_JOB = BASE_JOBS | GRID_JOBS | CHAPTER_JOBS | {"book"}
CHAPTERS = ("intro", "world", "pretrain", "probe", "unlearn", "compare", "pubg", "attacks", "claims", "adapt", "rerun")
TABLES_ONLY = ("intro", "claims", "rerun")


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    book = tmp_path_factory.mktemp("study")
    first = run_study(MICRO_STUDY, book_dir=book, log=lambda *_: None)
    return book, first


def test_both_notebooks_execute_and_the_book_builds(study_run):
    book, first = study_run
    assert first["jobs"] == {**{j: "ran" for j in EVERY_JOB}, **IDK}
    assert list(first["failed"]) == ["w1-split-idk-seed0", "w2-split-idk-seed0"]
    # a job's log reads as lines: lvlmu's progress, no weight-loading bars from each model load
    log = (book / "artifacts" / "logs" / "w1-grid-single-siu.log").read_text()
    assert "[lvlmu] w1-grid-single-siu: run 1/" in log and "Loading weights" not in log
    assert "matches no linear module" in first["failed"]["w1-split-idk-seed0"]
    assert first["missing"] == ["w1-split-idk-seed0", "w2-split-idk-seed0"]
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
    models = book / "artifacts" / "w1" / "models"
    manifests = {m: json.loads((models / m / "manifest.json").read_text()) for m in ("base", "oracle")}
    manifests["vision"] = json.loads((book / "artifacts" / "models" / "vision" / "manifest.json").read_text())
    for model in ("base", "oracle"):
        assert manifests[model]["config"]["exclude_roles"] == ([] if model == "base" else ["forget"])
        assert manifests[model]["inputs"]["vision_tower"], "both start from the shared pretrained tower"
        assert (book / "artifacts" / "results" / f"recall_{model}.jsonl").exists()
    assert manifests["oracle"]["steps"] == manifests["base"]["steps"], "the oracle trains as long as the base"
    assert manifests["oracle"]["n_train_examples"] < manifests["base"]["n_train_examples"]
    html = book / "_build" / "html"
    for name in ("base", "oracle", "oracle_seed1"):
        assert (book / "artifacts" / "w1" / "probes" / name / "summary.json").exists()
    # Each reporting world has its own people, base model and oracle; the vision tower is trained once, on the tuning world.
    second = json.loads((book / "artifacts" / "w2" / "models" / "base" / "manifest.json").read_text())
    assert second["inputs"]["vision_tower"] == manifests["base"]["inputs"]["vision_tower"]
    from lvlmu.world import load_world

    forget = [[p.name for p in load_world(book / "artifacts" / w / "world").forget] for w in ("w1", "w2")]
    assert forget[0] != forget[1], "each world its own people"
    assert json.loads((book / "artifacts" / "w3" / "world" / "world.json").read_text())["config"]["seed"] == 3
    for page in ("index.html", "book/notebooks/intro.html", "book/methods.html", "book/limitations.html", "book/notebooks/rerun.html", "book/notebooks/world.html", "book/notebooks/pretrain.html", "book/notebooks/probe.html"):
        assert (html / page).exists(), page
    pretrain_page = (html / "book" / "notebooks" / "pretrain.html").read_text()
    assert "Traceback" not in pretrain_page and "<img" in pretrain_page
    # Every job's done-record holds its key, and the failed run's job its failure.
    for name in EVERY_JOB:  # one record each, named by its key
        [path] = recorded(book / "artifacts", name)
        assert path.name == f"{name}.{json.loads(path.read_text())['key']}.json"
    [idk] = recorded(book / "artifacts", "w1-grid-split")
    assert list(json.loads(idk.read_text())["failed"]) == ["w1-split-idk-seed0"]
    unlearned = json.loads((models / "unlearned" / "single-siu-person0-seed0" / "manifest.json").read_text())
    assert unlearned["forget_people"] == [first_forget(book)] and unlearned["config"]["images"] == "single"
    compare_page = (html / "book" / "notebooks" / "compare.html").read_text()
    assert "Traceback" not in compare_page and "w2-split-idk-seed0" in compare_page, "the failed run is named as missing"
    assert "This build, on 2 worlds" in compare_page
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
    for page in ("methods", "limitations", "adapt", "references"):
        dom = BeautifulSoup(render_in_chromium(html / "book" / f"{page}.html"), "html.parser")
        assert (dom.find("main") or dom).find("h1"), f"{page} did not load"
    # The formulas are typeset offline (MathJax from the build, not a CDN), and the papers are cited.
    for page in (html / "book" / "methods.html", html / "book" / "notebooks" / "pubg.html"):
        main = BeautifulSoup(render_in_chromium(page), "html.parser").find("main")
        assert main.find("mjx-container"), f"{page.name}: no typeset formula"
        raw = re.findall(r"\\(?:mathrm|mathcal|frac|sum|log|pi|Vert|bigl)\b", main.get_text())
        assert not raw, f"{page.name} shows raw TeX: {raw[:5]}"
    methods = BeautifulSoup(render_in_chromium(html / "book" / "methods.html"), "html.parser").find("main")
    references = BeautifulSoup((html / "book" / "references.html").read_text(), "html.parser").find("article").get_text()
    assert "single image unlearning" in references.lower() and "rethinking post-unlearning behavior" in references.lower()
    assert methods.find("a", href=re.compile(r"references\.html#id")), "the methods page cites into the bibliography"


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


def first_forget(book, world: str = "w1") -> str:
    from lvlmu.world import load_world

    return load_world(book / "artifacts" / world / "world").forget[0].person_id


def test_an_unchanged_job_is_skipped_and_a_changed_one_reruns(study_run):
    book, _ = study_run
    again = run_study(MICRO_STUDY, book_dir=book, build=False, log=lambda *_: None)
    # Nothing runs; the failure is still reported, from its job's record.
    assert again["jobs"] == {**{j: "cached" for j in EVERY_JOB - {"book"}}, **{j: "cached with failures" for j in IDK}}
    assert list(again["failed"]) == ["w1-split-idk-seed0", "w2-split-idk-seed0"]
    # The failing run gets a working config, and a finished run a new one: it retrains, and its stale probe results
    # are replaced rather than refused. The chapters that read the grid run again; the models are reused.
    third = run_study(CHANGED_STUDY, book_dir=book, build=False, log=lambda *_: None)
    assert third["failed"] == {}
    readers = {f"chapter-{c}" for c in ("compare", "pubg", "attacks", "claims", "intro", "rerun")}
    assert {j for j, status in third["jobs"].items() if status == "ran"} == {"chapter-pretrain"} | readers | {
        f"{w}-{j}" for w in ("w1", "w2") for j in ("grid-split", "attack-split")}  # the single-image setting is tuned apart
    nb = nbformat.read(book / "book" / "notebooks" / "pretrain.ipynb", as_version=4)
    assert "reusing" in "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # A missing done-record makes its job run again.
    [record] = recorded(book / "artifacts", "chapter-pretrain")
    record.unlink()
    fourth = run_study(CHANGED_STUDY, book_dir=book, build=False, log=lambda *_: None)
    assert {j for j, status in fourth["jobs"].items() if status == "ran"} == {"chapter-pretrain"}
    # Parameters inside the book directory are relative: the rendered book shows no machine paths.
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'world_dir = "artifacts/w1/world"' in injected.source and str(book) not in injected.source


def test_a_failing_notebook_leaves_no_output(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("raise ValueError('boom')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, tmp_path / "broken.ipynb")
    output = tmp_path / "book" / "notebooks" / "broken.ipynb"
    with pytest.raises(RuntimeError, match="notebook broken.ipynb failed") as failure:
        execute_notebook(tmp_path / "broken.ipynb", output, {"x": 2}, kernel="python3")
    # The log shows the failing cell's traceback, without terminal colours.
    assert "raise ValueError('boom')" in str(failure.value) and "ValueError: boom" in str(failure.value)
    assert "\x1b[" not in str(failure.value)
    assert not output.exists()


def test_an_interrupted_directory_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "weights").write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_unknown_profile_and_config_keys_name_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"unknown profile 'huge'.*full.*quick"):
        get_profile("huge")
    assert set(profiles()) >= {"full", "quick"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("unlearn: {steps: 5, stpes: 3}\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stpes'\] in .*unlearn; the keys of UnlearnGrid are \[.*'steps'"):
        get_profile(str(bad))
    bad.write_text("grid_jobs: person\n")
    with pytest.raises(ValueError, match="grid_jobs='person'; choose from"):
        get_profile(str(bad))
    bad.write_text("worlds: [0, 1]\n")  # world.seed, 0 by default, is the tuning world
    with pytest.raises(ValueError, match="world 0 is the tuning world .* cannot also report results"):
        get_profile(str(bad))
    bad.write_text("worlds: [1, 1]\n")
    with pytest.raises(ValueError, match="distinct world seeds"):
        get_profile(str(bad))
    bad.write_text("unlearn: {single_people: 9}\n")
    with pytest.raises(ValueError, match="single_people=9, but each world has 8 forget people"):
        get_profile(str(bad))


def test_the_claims_and_pubg_pages_write_their_prose_from_the_results(study_run):
    """Change one run's stored results: the claims page and the PUBG chapter's closing sentences, rebuilt from the
    new result set, state the new figures."""
    book, _ = study_run
    # PUBG's run in each world is given the same new figures: the interval over the two worlds is then that figure.
    paths = [book / "artifacts" / w / "probes" / "split-pubg-seed0" / "summary.json" for w in ("w1", "w2")]
    originals = [path.read_text() for path in paths]
    claims_page = book / "_build" / "html" / "book" / "notebooks" / "claims.html"
    pubg_page = book / "_build" / "html" / "book" / "notebooks" / "pubg.html"

    def prose(page):  # Sphinx's smart quotes turn ' into ’
        return BeautifulSoup(page.read_text(), "html.parser").get_text(" ", strip=True).replace("\u2019", "'")
    before = prose(pubg_page)
    assert "43.2%" not in prose(claims_page) and "desirable rate is 87.7%" not in before
    assert "pubg's desirable rate is" in before, "the closing sentences are written from the results"
    try:
        for path, original in zip(paths, originals):
            data = json.loads(original)
            for condition in ("identity", "open query"):
                data["metrics"]["aftermath"]["summary"][condition]["leak"] = 0.4321
                data["metrics"]["aftermath"]["summary"][condition]["desirable"] = 0.877
            path.write_text(json.dumps(data))
        # Results are known by their keys, not their bytes: a hand edit is not news to the engine, so the chapters are
        # asked for by removing their done-records (as `snakemake --forcerun chapter_claims` would).
        for chapter in ("chapter-claims", "chapter-pubg"):
            [record] = recorded(book / "artifacts", chapter)
            record.unlink()
        report = run_study(CHANGED_STUDY, book_dir=book, log=lambda *_: None)
        assert report["jobs"]["chapter-claims"] == "ran" and report["jobs"]["chapter-pubg"] == "ran"
        assert report["jobs"]["w1-grid-split"] == "cached"
        assert "43.2% [43.2%, 43.2%] (2 worlds) of answers" in prose(claims_page)
        after = prose(pubg_page)
        assert "pubg's desirable rate is 87.7% [87.7%, 87.7%] (2 worlds)" in after and after != before
    finally:
        for path, original in zip(paths, originals):
            path.write_text(original)


def test_each_run_carries_the_oracle_on_its_own_people_and_how_many_photographs_its_leak_counts(study_run):
    from lvlmu.probe.compare import headline
    from lvlmu.probe.store import ProbeStore
    from lvlmu.study import chapter_worlds, grid_runs
    from lvlmu.unlearn.results import collect_runs, reference_results
    from lvlmu.world import load_world

    book, _ = study_run
    artifacts = book / "artifacts"
    frame, _ = collect_runs(grid_runs(MICRO_STUDY, artifacts), chapter_worlds(MICRO_STUDY, artifacts))
    world = load_world(artifacts / "w1" / "world")
    single = frame[(frame["setting"] == "single") & (frame["world"] == "w1")]
    split = frame[(frame["setting"] == "split") & (frame["world"] == "w1")]
    # the leak on unseen photographs counts one person's photographs in a single-image run, the split's in a split run
    assert (single["answers: name leak: unseen images"] == MICRO_WORLD.unseen_images).all() and not single.empty
    assert (split["answers: name leak: unseen images"] == MICRO_WORLD.unseen_images * len(world.forget)).all()
    # a single-image run is read against the oracle probed on its one person, not on the whole forget split
    person = single["forget"].iloc[0]
    alone = headline(ProbeStore.read(reference_results(artifacts / "w1" / "probes", "oracle", [person])))
    whole = headline(ProbeStore.read(artifacts / "w1" / "probes" / "oracle"))
    assert (single["oracle: visual MIA AUC (LOSS)"] == alone["visual MIA AUC (LOSS)"]).all()
    assert (split["oracle: visual MIA AUC (LOSS)"] == whole["visual MIA AUC (LOSS)"]).all()


def test_only_runs_one_method_and_a_chapter_without_results_names_its_missing_runs(study_run):
    book, _ = study_run
    # PUBG's runs in both worlds lose their results: the chapter has none to show.
    results = [book / "artifacts" / w / "probes" / "split-pubg-seed0" for w in ("w1", "w2")]
    moved = [r.with_name("split-pubg-seed0.kept") for r in results]
    for r, m in zip(results, moved):
        r.rename(m)
    try:
        report = run_study(CHANGED_STUDY, book_dir=book, build=False, log=lambda *_: None, only="graddiff")
        assert not {"w2-grid-single-siu", "w1-grid-single-ablations", "w1-grid-curve"} & set(report["jobs"]), "only graddiff's jobs"
        assert {"w1-grid-split", "w2-grid-single-graddiff", "w2-grid-single-augmented"} <= set(report["jobs"])
        # the forget split's job holds graddiff's runs alone
        split = plan_jobs(CHANGED_STUDY, book / "artifacts", book, only="graddiff")["w1-grid-split"]
        assert [run["name"] for run in split.spec["runs"]] == ["w1-split-graddiff-seed0"]
        assert report["jobs"]["chapter-pubg"] == "ran" and [m for m in report["missing"] if "pubg" in m] == ["w1-split-pubg-seed0", "w2-split-pubg-seed0"]
        page = nbformat.read(book / "book" / "notebooks" / "pubg.ipynb", as_version=4)
        assert "w2-split-pubg-seed0" in page.cells[0].source and "no results" in page.cells[0].source
    finally:
        for r, m in zip(results, moved):
            m.rename(r)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        run_study(CHANGED_STUDY, book_dir=book, build=False, log=lambda *_: None, only="nope")


def test_a_fresh_task_reuses_no_result_of_its_own_and_a_plain_one_reuses_them(study_run, monkeypatch):
    """What `--force` asks of each task (the engine's setting `fresh` puts `--fresh` on the Snakefile's task command):
    the job's model and probe results are computed again, not read from the caches inside it, which a plain rerun of
    the same job reads. The recomputed results equal the first ones (same config and seed), so the later tests of the
    built study read the same numbers."""
    book, _ = study_run
    monkeypatch.chdir(book)  # where the Snakefile runs a task
    name = "w1-grid-single-graddiff"
    [done] = recorded(Path("artifacts"), name)
    key = done.name.split(".")[1]  # NAME.KEY.json
    [run] = read_job(Path("artifacts"), name, key).spec["runs"]

    def written() -> tuple[int, set[int]]:
        return (Path(run["model_dir"], "manifest.json").stat().st_mtime_ns,
                {p.stat().st_mtime_ns for p in Path(run["results_dir"]).rglob("*") if p.is_file()})

    first = written()
    assert first[1], "the run has probe results"
    run_task(name, Path("artifacts"), key)
    assert written() == first  # reused
    run_task(name, Path("artifacts"), key, fresh=True)
    model, results = written()
    assert model != first[0] and results.isdisjoint(first[1])


def test_a_chapter_page_in_place_of_results(tmp_path):
    path = tmp_path / "book" / "notebooks" / "adapt.ipynb"
    placeholder_page(path, "Your own model and concepts", "This chapter's notebook (`adapt`) failed: `ValueError: the concept 'x' has no images`.")
    text = nbformat.read(path, as_version=4).cells[0].source
    assert text.startswith("# Your own model and concepts") and ":::{warning}" in text
    assert "ValueError: the concept 'x' has no images" in text and "`adapt`" in text


def test_a_killed_training_leaves_no_temporary_directory_and_no_record(micro_world, tmp_path):
    """A vision-tower training stopped by SIGTERM (what Snakemake and Slurm send) removes its temporary directory and
    writes no done-record, so a rerun cannot take it as done."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from lvlmu.job import write_plan
    from lvlmu.study import jobs

    shutil.copytree(micro_world.root, tmp_path / "artifacts" / "w3" / "world")  # the tuning world
    study = replace(MICRO_STUDY, vision=replace(MICRO_VISION, epochs=10_000))  # long enough to be killed mid-way
    plan = jobs(study, tmp_path / "artifacts", tmp_path)
    write_plan(tmp_path / "artifacts", plan, tmp_path)  # what the Snakefile does
    command = [sys.executable, "-m", "lvlmu", "task", "vision", "--key", plan["vision"].key]
    models = tmp_path / "artifacts" / "models"
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not list(models.glob(".vision.*.tmp")) and process.poll() is None and time.time() < deadline:
            time.sleep(0.5)
        assert list(models.glob(".vision.*.tmp")), "the training never started: " + (process.stdout.read() if process.poll() is not None else "")
        time.sleep(2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) != 0
    finally:
        process.kill()
    assert not list(models.glob(".vision*")) and not (models / "vision").exists()
    assert not recorded(tmp_path / "artifacts", "vision")


def test_snakemake_lists_every_job_and_the_cluster_profile_dry_runs(tmp_path):
    """`snakemake -n` with a profile's config file lists every job of the plan; with the Slurm profile (one job per
    grid run, each with a GPU) too. The dry run submits nothing: no Slurm is needed."""
    import re
    import subprocess
    import sys

    from lvlmu.study import REPO_DIR, grid_batches, jobs, tuned

    from lvlmu.engine import stage_book_sources

    stage_book_sources(tmp_path)
    study = get_profile("quick")
    planned = len(jobs(study, tmp_path / "artifacts", tmp_path))
    # No --config on this command line: it would replace the profile's.
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_DIR / "workflow" / "Snakefile"), "--directory", str(tmp_path),
            "--configfile", str(REPO_DIR / "workflow" / "config" / "quick.yaml"), "--dry-run"]
    for extra, grid_jobs in (([], "batched"), (["--profile", str(REPO_DIR / "profiles" / "slurm")], "run")):
        result = subprocess.run(base + extra, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        total = int(re.search(r"^total\s+(\d+)", result.stdout, re.MULTILINE).group(1))
        n_grid = len(grid_batches(tuned(replace(study, grid_jobs=grid_jobs))))  # the grid as planned: its settings and curve read
        assert total == planned - len(grid_batches(tuned(study))) + n_grid + 2, result.stdout[-2000:]  # and the book, and `all`
        if grid_jobs == "run":
            assert "w1_grid_split_ga_seed0" in result.stdout and "gpu=1" in result.stdout.replace(" ", "")
