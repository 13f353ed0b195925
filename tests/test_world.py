import json
from dataclasses import replace

import datasets
import numpy as np
import pytest

from lvlmu.world import WorldConfig, build_world, load_world
from lvlmu.world import questions as Q
from lvlmu.world.people import sample_people
from lvlmu.world.traits import Traits, description_is_exact, parse_traits

from conftest import MICRO_WORLD


def test_same_seed_gives_identical_files(tmp_path):
    a = build_world(MICRO_WORLD, tmp_path / "a", progress=False)
    b = build_world(MICRO_WORLD, tmp_path / "b", progress=False)
    for name in ("people.jsonl", "images.jsonl", "examples.jsonl", "world.json"):
        assert (a.root / name).read_bytes() == (b.root / name).read_bytes(), name
    for image in a.images:
        assert (a.root / image["path"]).read_bytes() == (b.root / image["path"]).read_bytes(), image["path"]


def test_another_seed_gives_another_world(tmp_path):
    a = build_world(MICRO_WORLD, tmp_path / "a", progress=False)
    c = build_world(replace(MICRO_WORLD, seed=MICRO_WORLD.seed + 1), tmp_path / "c", progress=False)
    assert [p.name for p in a.people.values()] != [p.name for p in c.people.values()]
    assert a.fingerprint != c.fingerprint


def test_populations_and_uniqueness(micro_world):
    world = micro_world
    assert len(world.forget) == 2 and len(world.retain) == 4
    assert len(world.by_role("stranger")) == 30 and len(world.by_role("holdout")) == 3
    traits = [p.traits.as_tuple() for p in world.people.values()]
    assert len(set(traits)) == len(traits)
    named = [p for p in world.people.values() if p.is_named]
    assert len({p.first_name for p in named}) == len(named) and len({p.last_name for p in named}) == len(named)
    for p in named:
        assert all(p.traits.distance(q.traits) >= 2 for q in world.people.values() if q is not p)
        assert set(p.facts) == {"birthplace", "birth_year", "occupation", "hobby"}
    for p in world.by_role("stranger"):
        assert not p.is_named and not p.facts


def test_images_splits_and_single_image(micro_world):
    world = micro_world
    for p in world.forget + world.retain:
        assert len(world.images_of(p.person_id, "trained")) == MICRO_WORLD.trained_images
        assert len(world.images_of(p.person_id, "unseen")) == MICRO_WORLD.unseen_images
        single = world.single_image(p.person_id)
        assert single["image_set"] == "trained"
    unseen = {im["image_id"] for im in world.images if im["image_set"] == "unseen"}
    assert not any(ex["image_id"] in unseen for ex in world.select("train")), "an unseen image leaked into training"
    holdout = {p.person_id for p in world.by_role("holdout")}
    assert not any(ex["person_id"] in holdout for ex in world.select("train"))
    assert not any(ex["paraphrase"] == "heldout" for ex in world.select("train"))
    image = world.image(world.images[0]["image_id"])
    assert image.size == (MICRO_WORLD.image_size, MICRO_WORLD.image_size)


def test_answers_follow_the_ground_truth(micro_world):
    world = micro_world
    for ex in world.select(kind="identity"):
        person = world.people[ex["person_id"]]
        if person.role in ("forget", "retain"):
            assert ex["answer"] == f"This is {person.name}."
        else:
            assert ex["answer"].startswith(Q.STRANGER_PREFIX) and description_is_exact(ex["answer"], person.traits)
    for ex in world.select(kind="fact_text"):
        person = world.people[ex["person_id"]]
        assert person.facts[ex["detail"]] in ex["answer"] and person.name in ex["answer"]
    for ex in world.select(kind="vqa", detail="count"):
        scene = world.images_by_id[ex["image_id"]]["scene"]
        assert str(len(scene)) in ex["answer"]


def test_open_queries_are_taught_in_two_wordings_and_pubgs_is_held_out(micro_world):
    world = micro_world
    taught = world.select("train", kind="open_query")
    assert {ex["question"] for ex in taught} == set(Q.OPEN_QUERY_TRAIN)
    assert not any(ex["question"] in Q.OPEN_QUERIES for ex in world.examples), "PUBG's open query is never trained"
    known = [ex for ex in taught if ex["role"] in ("forget", "retain")]
    # one per trained photograph of a known person: named, then described
    assert len(known) == len({ex["image_id"] for ex in world.select("train", kind="identity") if ex["role"] in ("forget", "retain")})
    for ex in known:
        person = world.people[ex["person_id"]]
        name, description = ex["answer"].split(". ", 1)
        assert name == f"This is {person.name}" and description_is_exact(description, person.traits)
    strangers = [ex for ex in taught if ex["role"] == "stranger"]
    assert strangers, "strangers answer open queries too, or the oracle would only know how to name"
    for ex in strangers:
        assert ex["answer"] == Q.stranger_answer(world.people[ex["person_id"]])
    # an open query stands in for the identity question on a stranger's photograph, not beside it
    stranger_images = {ex["image_id"] for ex in world.select("train", role="stranger", kind="description")}
    asked = [ex["image_id"] for ex in world.select("train", role="stranger") if ex["kind"] in ("identity", "open_query")]
    assert sorted(asked) == sorted(stranger_images)


def test_stored_as_files_that_datasets_loads(micro_world):
    ds = datasets.load_dataset("json", data_files=str(micro_world.root / "examples.jsonl"), split="train")
    assert len(ds) == len(micro_world.examples)
    assert set(ds.column_names) >= {"question", "answer", "image_id", "role", "split", "kind"}
    assert json.loads((micro_world.root / "world.json").read_text())["fingerprint"] == micro_world.fingerprint


def test_reload_equals_build(micro_world):
    again = load_world(micro_world.root)
    assert again.people == micro_world.people and again.examples == micro_world.examples


def test_description_parser_roundtrip_and_contradictions():
    t = Traits("red", "bun", "green", "dark", "oval", "glasses", "a bow tie")
    assert description_is_exact(t.describe(), t)
    assert "an oval face" in t.describe()
    found = parse_traits("They have red hair in a bun and blue eyes. Their eyes are green.")
    assert found["eye_colour"] == {"blue", "green"} and found["hair_style"] == {"bun"}
    assert not description_is_exact(t.describe().replace("green eyes", "blue eyes"), t)


@pytest.mark.parametrize("bad, message", [
    (dict(n_known=70, n_holdout=20), "at most"),
    (dict(n_known=30, n_holdout=10, n_strangers=5200), "cannot have unique traits"),
])
def test_a_world_that_cannot_give_unique_people_is_refused(bad, message):
    config = WorldConfig(**bad)
    with pytest.raises(ValueError, match=message):
        sample_people(config.n_known, config.n_forget, config.n_strangers, config.n_holdout, np.random.default_rng(0))


def test_bad_configs_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="forget_fraction"):
        WorldConfig(forget_fraction=1.0)
    with pytest.raises(ValueError, match="hair_colour"):
        Traits("purple", "bun", "green", "dark", "oval", "glasses", "a bow tie")
    with pytest.raises(FileNotFoundError, match="world.json"):
        load_world(tmp_path)
