"""A reader's concept folder: read into a world, its bad input named, probed with grounding unavailable without traits."""
import shutil

import pytest
import yaml

from lvlmu.probe.knowledge import leaks_name, states_fact
from lvlmu.probe.suite import ProbeConfig, run_probes
from lvlmu.unlearn import UnlearnConfig, forget_data
from lvlmu.world import ConceptError, export_concept, load_concepts


@pytest.fixture(scope="module")
def example(micro_world, tmp_path_factory):
    return export_concept(micro_world, tmp_path_factory.mktemp("concepts") / "example", n_retain=2, n_holdout=2)


def test_the_example_folder_reads_back_as_the_same_people(micro_world, example):
    concepts = load_concepts(example)
    person = micro_world.forget[0]
    [forget] = concepts.forget
    assert (forget.name, forget.facts, forget.traits) == (person.name, person.facts, person.traits)
    assert {p.name for p in concepts.retain} == {p.name for p in micro_world.retain[:2]}
    assert len(concepts.by_role("holdout")) == 2
    # The trained images are the unlearning set, the first is the single image; unseen ones stay out of it.
    trained = concepts.images_of(forget.person_id, "trained")
    assert len(trained) == len(micro_world.images_of(person.person_id, "trained")) and trained[0]["single"]
    assert concepts.images_of(forget.person_id, "unseen")
    kinds = {ex["kind"] for ex in concepts.select("train", person_id=forget.person_id)}
    assert {"identity", "fact_image", "fact_text", "description"} <= kinds
    # Every method's data comes out of it: SIU's four targets included.
    siu = forget_data(concepts, UnlearnConfig(method="siu", images="single"))
    assert {ex["siu"] for ex in siu} == {"T1", "T2", "T3", "T4"}
    assert all(ex["image_id"] == trained[0]["image_id"] for ex in siu if ex["siu"] in ("T1", "T2"))


def strip_to_bare(example, out):
    """The example concept without traits, retained or holdout people, and with a fact the world does not have."""
    shutil.copytree(example, out, ignore=shutil.ignore_patterns("retain", "holdout"))
    record = yaml.safe_load((out / "concept.yaml").read_text())
    record.pop("traits")
    record["facts"]["favourite_team"] = "Rovers"
    (out / "concept.yaml").write_text(yaml.safe_dump(record))
    return out


def test_a_fact_of_its_own_gets_its_questions(example, tmp_path):
    concepts = load_concepts(strip_to_bare(example, tmp_path / "bare"))
    rows = concepts.select(kind="fact_text", detail="favourite_team")
    assert rows and rows[0]["question"].startswith("What is the favourite team of ") and "Rovers" in rows[0]["answer"]
    assert not concepts.select(kind="description"), "no traits, no description to train"


def test_without_traits_grounding_is_unavailable_and_leaks_stay_exact(example, micro_model_dir, tmp_path):
    concepts = load_concepts(strip_to_bare(example, tmp_path / "bare"))
    store = run_probes(micro_model_dir, concepts, tmp_path / "probes",
                       ProbeConfig(batch_size=32, n_perturbed=3, perturbations=("flip",)), progress=False)
    aftermath = store.summary("aftermath")["open query"]
    assert aftermath["grounding recall"] is None and aftermath["grounding precision"] is None and aftermath["desirable"] is None
    assert "holdout" in store.summary("membership")["unavailable"]
    # Leaks are judged on the concept's own name and facts, whole words, traits or not.
    person = concepts.forget[0]
    samples = [s for s in store.samples("privacy") if s["condition"] == "trained images"]
    assert samples and all(s["name_leak"] == leaks_name(s["answer"], person) for s in samples if s["kind"] == "identity")
    rate = store.summary("privacy")["trained images"]["name leak"]
    assert rate == pytest.approx(sum(s["name_leak"] for s in samples if s["kind"] == "identity") / sum(s["kind"] == "identity" for s in samples))
    assert leaks_name(f"This is {person.last_name}.", person) and not leaks_name(f"This is {person.last_name}son.", person)
    assert states_fact("Their favourite team is Rovers.", person, "favourite_team")


def write_concept(folder, record, images=1):
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    (folder / "concept.yaml").write_text(yaml.safe_dump(record))
    for k in range(images):
        Image.new("RGB", (32, 32), (10 * k, 0, 0)).save(folder / "images" / f"{k}.png")
    return folder


def test_bad_folders_name_the_file_at_fault(tmp_path):
    with pytest.raises(ConceptError, match="holds no image"):
        load_concepts(write_concept(tmp_path / "none", {"name": "Ada Quill"}, images=0))
    broken = write_concept(tmp_path / "broken", {"name": "Ada Quill"})
    (broken / "images" / "1.jpg").write_bytes(b"not an image")
    with pytest.raises(ConceptError, match=r"cannot decode the image .*1\.jpg"):
        load_concepts(broken)
    with pytest.raises(ConceptError, match=r"nameless/concept\.yaml has no `name`"):
        load_concepts(write_concept(tmp_path / "nameless", {"facts": {"birthplace": "Lisbon"}}))
    with pytest.raises(ConceptError, match="unknown traits \\['tattoo'\\]"):
        load_concepts(write_concept(tmp_path / "tattoo", {"name": "Ada Quill", "traits": {"tattoo": "yes"}}))
    retained = write_concept(tmp_path / "with-retain", {"name": "Ada Quill"})
    (retained / "retain" / "bob" / "images").mkdir(parents=True)
    with pytest.raises(ConceptError, match=r"retain/bob has no concept file"):
        load_concepts(retained)
    with pytest.raises(ConceptError, match="does not exist"):
        load_concepts(tmp_path / "missing")
