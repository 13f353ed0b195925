"""A reader's own concepts: a folder of images and a small facts file, read into a World that every method and probe uses.

    my-concept/
      concept.yaml        # name (required), facts (optional), traits (optional); or concept.json
      images/             # at least one image of the concept; the first by file name is the single image
      unseen/             # optional: images kept out of unlearning, to test whether forgetting generalises
      retain/<other>/     # optional: other concepts to keep, each laid out the same way (concept file, images/, unseen/)
      holdout/<other>/    # optional: concepts the model never saw, the non-members of membership inference

concept.yaml:

    name: Ada Quill                # the leak probes look for the first and the last name, whole words
    facts:                         # private facts; the leak probes look for each value, whole words
      birthplace: Lisbon           # the world's facts (birthplace, birth_year, occupation, hobby) keep their questions;
      favourite_team: Benfica      # any other is asked as "What is the favourite team of this person?"
    traits:                        # optional, in lvlmu's trait vocabulary (TRAIT_VALUES); any subset
      hair_colour: red

Without traits a leak is still judged exactly (names and fact strings); grounding is then reported as unavailable.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from ..io import hash_file, hash_json, write_json
from .build import World, _face_examples, _text_examples
from .people import Person
from .traits import TRAIT_VALUES, Traits

CONCEPT_FILES = ("concept.yaml", "concept.yml", "concept.json")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
CONCEPT_FORMAT = 1


class ConceptError(ValueError):
    """A concept folder that cannot be read; the message names the file."""


def _concept_file(folder: Path) -> Path:
    found = [folder / name for name in CONCEPT_FILES if (folder / name).exists()]
    if not found:
        raise ConceptError(f"{folder} has no concept file: write {folder / 'concept.yaml'} with at least a `name`")
    return found[0]


def _read_concept(path: Path, person_id: str, role: str) -> Person:
    try:
        record = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConceptError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}") from error
    if not isinstance(record, dict):
        raise ConceptError(f"{path} must hold a mapping with `name`, and optionally `facts` and `traits`")
    name = str(record.get("name") or "").strip()
    if not name:
        raise ConceptError(f"{path} has no `name`: the concept's name is what the leak probes look for")
    facts, traits = record.get("facts") or {}, record.get("traits") or {}
    if not isinstance(facts, dict) or not isinstance(traits, dict):
        raise ConceptError(f"{path}: `facts` and `traits` must be mappings (key: value)")
    unknown = sorted(set(traits) - set(TRAIT_VALUES))
    if unknown:
        raise ConceptError(f"{path}: unknown traits {unknown}; the traits lvlmu can judge are {list(TRAIT_VALUES)}")
    try:
        parsed = Traits(**{k: str(v) for k, v in traits.items()})
    except ValueError as error:
        raise ConceptError(f"{path}: {error}") from error
    first, _, last = name.partition(" ")
    return Person(person_id, role, parsed, first, last.strip(), {str(k): str(v) for k, v in facts.items() if v is not None})


def _images(folder: Path, required: bool) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if required and not files:
        raise ConceptError(f"{folder} holds no image ({', '.join(IMAGE_SUFFIXES)}); a concept needs at least one")
    for path in files:
        try:
            with Image.open(path) as image:
                image.convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise ConceptError(f"cannot decode the image {path}: {error}") from error
    return files


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "concept"


def load_concepts(folder: str | os.PathLike) -> World:
    """Read a concept folder (see the module docstring) into a World: the concept is the forget person, the retain and
    holdout folders add known and never-seen people. Errors name the file at fault."""
    root = Path(folder)
    if not root.is_dir():
        raise ConceptError(f"concept folder {root} does not exist or is not a directory")
    entries = [(root, "forget")]
    for role in ("retain", "holdout"):
        if (root / role).is_dir():
            entries += [(d, role) for d in sorted((root / role).iterdir()) if d.is_dir()]
    people, images, examples, hashed = {}, [], [], {}
    rng = np.random.default_rng(0)
    for directory, role in entries:
        person_id = _slug(directory.name if directory != root else "concept")
        if person_id in people:
            raise ConceptError(f"two concepts in {root} share the id {person_id!r}; rename one of their folders")
        concept_file = _concept_file(directory)
        person = people[person_id] = _read_concept(concept_file, person_id, role)
        hashed[str(concept_file.relative_to(root))] = hash_file(concept_file)
        trained = _images(directory / "images", required=True)
        plan = [(p, "unseen" if role == "holdout" else "trained") for p in trained] + [(p, "unseen") for p in _images(directory / "unseen", False)]
        for k, (path, image_set) in enumerate(plan):
            image_id = f"{person_id}_{k:02d}"
            relative = str(path.relative_to(root))
            hashed[relative] = hash_file(path)
            images.append({"image_id": image_id, "path": relative, "person_id": person_id, "index": k, "image_set": image_set,
                           "single": role != "holdout" and k == 0})
            examples += _face_examples(person, image_id, image_set, k, rng)
        examples += _text_examples(person)
    for i, example in enumerate(examples):
        example["example_id"] = i
    fingerprint = hash_json({"format": CONCEPT_FORMAT, "files": hashed})[:16]
    return World(root, None, fingerprint, people, images, examples)


def export_concept(world: World, out_dir: str | os.PathLike, person_id: str | None = None, n_retain: int = 3,
                   n_holdout: int = 2) -> Path:
    """Write one of the world's people as a concept folder (by default the first of the forget split), with
    `n_retain` retained and `n_holdout` holdout people beside it: the example that the adapt notebook runs on."""
    person = world.people[person_id] if person_id else world.forget[0]
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)

    def write(p: Person, directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "concept.yaml").write_text(yaml.safe_dump({"name": p.name, "facts": dict(p.facts), "traits": p.traits.known},
                                                               sort_keys=False))
        for image in world.images_of(p.person_id):
            target = directory / ("unseen" if image["image_set"] == "unseen" and p.role != "holdout" else "images")
            target.mkdir(exist_ok=True)
            shutil.copy2(world.root / image["path"], target / Path(image["path"]).name)

    write(person, out)
    for p in world.retain[:n_retain]:
        write(p, out / "retain" / p.person_id)
    for p in world.by_role("holdout")[:n_holdout]:
        write(p, out / "holdout" / p.person_id)
    write_json(out / "source.json", {"world": str(world.root), "world_fingerprint": world.fingerprint, "person_id": person.person_id})
    return out
