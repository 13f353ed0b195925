"""Vision tower pretraining: its labels, its data (never a known person), its augmentation, and its hand-over to LLaVA."""
import json

import pytest
import torch

from lvlmu.model import load_model
from lvlmu.pretrain import PretrainConfig, pretrain
from lvlmu.data import ShiftMirror
from lvlmu.vision import FACE_LABELS, LABELS, SCENE_LABELS, ImageLabelCollator, image_labels, load_vision_tower, vision_examples
from lvlmu.world.traits import TRAIT_VALUES


def test_face_labels_mark_exactly_the_persons_traits(micro_world):
    image = micro_world.images_of(micro_world.retain[0].person_id)[0]
    labels = dict(zip(LABELS, image_labels(micro_world, image)))
    traits = micro_world.people[image["person_id"]].traits
    assert sum(labels.values()) == len(TRAIT_VALUES)
    assert all(labels[f"{t}={getattr(traits, t)}"] == 1.0 for t in TRAIT_VALUES)
    assert not any(labels[name] for name in SCENE_LABELS)


def test_scene_labels_give_shapes_count_and_leftmost(micro_world):
    image = next(im for im in micro_world.images if im["image_set"] == "scene")
    labels = dict(zip(LABELS, image_labels(micro_world, image)))
    items = image["scene"]
    assert labels[f"count={len(items)}"] == 1.0
    assert labels[f"left={min(items, key=lambda it: it['x'])['shape']}"] == 1.0
    assert sum(labels[name] for name in SCENE_LABELS if name.startswith("has ")) == len({(i["colour"], i["shape"]) for i in items})
    assert not any(labels[name] for name in FACE_LABELS)


def test_tower_never_sees_a_known_person_and_evaluates_on_unseen_images(micro_world):
    train, held_out = vision_examples(micro_world, "train"), vision_examples(micro_world, "eval")
    roles = {r["role"] for r in train}
    assert roles == {"stranger", "scene"}
    assert {r["role"] for r in held_out} == {"stranger", "holdout", "scene"}
    assert not {r["image_id"] for r in train} & {r["image_id"] for r in held_out}
    trained_ids = {im["image_id"] for im in micro_world.images if im["image_set"] == "trained"}
    assert not {r["image_id"] for r in held_out} & trained_ids


def test_collator_mirrors_faces_only(micro_world):
    rows = vision_examples(micro_world, "train")
    faces, scenes = [r for r in rows if r["mirror"]][:8], [r for r in rows if not r["mirror"]][:8]
    plain = ImageLabelCollator(micro_world, 32)(faces + scenes)["pixel_values"]
    out = ImageLabelCollator(micro_world, 32, ShiftMirror(max_shift=0, seed=1))(faces + scenes)["pixel_values"]
    n = len(faces)
    assert any(not torch.equal(out[i], plain[i]) for i in range(n)), "some faces are mirrored"
    for i in range(n):  # a changed face is exactly its mirror image
        assert torch.equal(out[i], plain[i]) or torch.equal(out[i], plain[i].flip(-1))
    assert torch.equal(out[n:], plain[n:]), "scenes are never mirrored"


def test_vision_pretraining_learns_and_records_held_out_accuracy(micro_vision_dir):
    manifest = json.loads((micro_vision_dir / "manifest.json").read_text())
    history = json.loads((micro_vision_dir / "log_history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < 0.7 * losses[0]
    assert set(manifest["accuracy_unseen"]) == {"stranger", "holdout"}
    assert 0.0 <= manifest["accuracy_unseen"]["stranger"]["hair_colour"] <= 1.0
    assert manifest["effective_batch_size"] == 16 and manifest["versions"]["transformers"]
    load_vision_tower(micro_vision_dir)


def test_frozen_tower_reaches_the_llava_model_unchanged(micro_vision_dir, micro_model_dir):
    tower = load_vision_tower(micro_vision_dir).state_dict()
    model, _ = load_model(micro_model_dir, dtype=torch.float32)
    inside = model.model.vision_tower.state_dict()
    assert tower.keys() == inside.keys()
    assert all(torch.equal(tower[k], inside[k]) for k in tower)


def test_a_frozen_tower_needs_a_pretrained_one(micro_world, tmp_path):
    with pytest.raises(ValueError, match="vision_dir"):
        pretrain(micro_world, tmp_path / "m", PretrainConfig(epochs=1), progress_bar=False)
    with pytest.raises(FileNotFoundError, match="no pretrained vision tower"):
        load_vision_tower(tmp_path)


def test_a_tower_is_reused_by_its_key_and_a_version_bump_trains_it_again(micro_world, micro_vision_dir, monkeypatch):
    import lvlmu.vision as vision
    from conftest import MICRO_VISION
    from lvlmu.training import reusable_manifest

    key = vision.vision_key(MICRO_VISION, micro_world.fingerprint)
    assert reusable_manifest(micro_vision_dir, key, MICRO_VISION.precision)["key"] == key
    monkeypatch.setattr(vision, "VISION_VERSION", vision.VISION_VERSION + 1)
    assert vision.vision_key(MICRO_VISION, micro_world.fingerprint) != key
