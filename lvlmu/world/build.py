"""Building, saving and loading the synthetic world."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..io import atomic_directory, read_jsonl, write_json, write_jsonl
from . import questions as Q
from .people import ROLES, Person, sample_people
from .render import SHAPE_RGB, SHAPES, Nuisance, ShapeItem, draw_face, draw_scene

WORLD_FORMAT = 1  # how a world is stored on disk
WORLD_VERSION = 3  # the world builder's code: bump it when what it draws or asks changes (see lvlmu.versions)
POPE_OBJECTS = {"glasses": "glasses", "earrings": "earrings", "necklace": "a necklace", "bow tie": "a bow tie"}


@dataclass(frozen=True)
class WorldConfig:
    """Every size of the world. Defaults follow the measurements in the field notes (32 px, many strangers)."""

    n_known: int = 40
    forget_fraction: float = 0.2
    n_strangers: int = 1000
    n_holdout: int = 20
    trained_images: int = 6
    unseen_images: int = 4
    stranger_trained_images: int = 2
    stranger_unseen_images: int = 1
    holdout_images: int = 4
    n_scenes: int = 400
    scene_eval_fraction: float = 0.25
    image_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_known < 1:
            raise ValueError(f"n_known must be at least 1, got {self.n_known}")
        if not 0.0 < self.forget_fraction < 1.0:
            raise ValueError(f"forget_fraction must lie strictly between 0 and 1, got {self.forget_fraction}")
        if self.trained_images < 1 or self.unseen_images < 1:
            raise ValueError("every known person needs at least one trained and one unseen image")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 px, got {self.image_size}")
        for name in ("n_strangers", "n_holdout", "n_scenes", "stranger_trained_images", "stranger_unseen_images", "holdout_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative")

    @property
    def n_forget(self) -> int:
        return max(1, round(self.n_known * self.forget_fraction))


@dataclass
class World:
    """A built world on disk: people, images and question/answer examples."""

    root: Path
    config: WorldConfig | None  # None for a world read from a reader's concept folder (lvlmu.world.concepts)
    fingerprint: str
    people: dict[str, Person]
    images: list[dict]
    examples: list[dict]
    _image_cache: dict[str, Image.Image] = field(default_factory=dict, repr=False)

    def by_role(self, role: str) -> list[Person]:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; the roles are {ROLES}")
        return [p for p in self.people.values() if p.role == role]

    @property
    def forget(self) -> list[Person]:
        return self.by_role("forget")

    @property
    def retain(self) -> list[Person]:
        return self.by_role("retain")

    @cached_property
    def images_by_id(self) -> dict[str, dict]:
        return {im["image_id"]: im for im in self.images}

    def images_of(self, person_id: str, image_set: str | None = None) -> list[dict]:
        return [im for im in self.images if im["person_id"] == person_id and (image_set is None or im["image_set"] == image_set)]

    def probe_image_set(self, person_id: str) -> str:
        """The images that test generality: "unseen" ones, or "trained" for a concept whose folder has no unseen images."""
        return "unseen" if self.images_of(person_id, "unseen") else "trained"

    def single_image(self, person_id: str) -> dict:
        return next(im for im in self.images if im["person_id"] == person_id and im["single"])

    def image(self, image_id: str) -> Image.Image:
        if image_id not in self._image_cache:
            with Image.open(self.root / self.images_by_id[image_id]["path"]) as im:
                self._image_cache[image_id] = im.convert("RGB")
        return self._image_cache[image_id]

    def select(self, split: str | None = None, exclude_roles: tuple[str, ...] = (), **where) -> list[dict]:
        """Examples filtered by split, by roles left out, and by equality on any other column."""
        out = []
        for ex in self.examples:
            if split is not None and ex["split"] != split:
                continue
            if ex["role"] in exclude_roles:
                continue
            if all(ex.get(k) == v for k, v in where.items()):
                out.append(ex)
        return out


def _face_examples(person: Person, image_id: str, image_set: str, k: int, rng: np.random.Generator) -> list[dict]:
    """Question/answer examples about one face image."""
    known = person.role in ("forget", "retain")
    described = person.traits.complete  # a reader's concept may state some traits or none: no description, no POPE
    base = {"person_id": person.person_id, "role": person.role, "image_id": image_id, "image_set": image_set}
    split = "train" if image_set == "trained" and person.role != "holdout" else "eval"
    rows = []

    def add(kind, question, answer, paraphrase="train", detail="", row_split=split):
        rows.append({**base, "split": row_split, "kind": kind, "question": question, "answer": answer, "paraphrase": paraphrase, "detail": detail})

    if split == "train":
        # Known people get every question on every image, and one open query; strangers, who are many, one identity
        # question or open query (a third of the time), one description question per image, and a fact question on
        # their first image only.
        if known:
            for question in Q.IDENTITY_TRAIN:
                add("identity", question, Q.identity_answer(person))
            add("open_query", Q.OPEN_QUERY_TRAIN[k % len(Q.OPEN_QUERY_TRAIN)], Q.open_answer(person))
        else:
            draw = int(rng.integers(len(Q.IDENTITY_TRAIN) + len(Q.OPEN_QUERY_TRAIN)))
            if draw < len(Q.IDENTITY_TRAIN):
                add("identity", Q.IDENTITY_TRAIN[draw], Q.identity_answer(person))
            else:
                add("open_query", Q.OPEN_QUERY_TRAIN[draw - len(Q.IDENTITY_TRAIN)], Q.open_answer(person))
        if described:
            add("description", Q.DESCRIBE[k % len(Q.DESCRIBE)], person.traits.describe())
        facts = ({f: Q.fact_questions_with_image(f) for f in person.facts} if known else
                 {f: Q.FACT_WITH_IMAGE[f] for f in [list(Q.FACT_WITH_IMAGE)[rng.integers(4)]]} if k == 0 else {})
        for fact, paraphrases in facts.items():
            answer = Q.fact_answer(person, fact) if known else Q.STRANGER_FACT_ANSWER
            add("fact_image", paraphrases[k % len(paraphrases)], answer, detail=fact)
        if known:
            for trait, (question, _) in Q.TRAIT_QUESTIONS.items():
                if trait in person.traits.known:
                    add("trait", question, Q.trait_answer(person, trait), detail=trait)
    else:
        add("identity", Q.IDENTITY_TRAIN[0], Q.identity_answer(person))
        add("identity", Q.IDENTITY_HELDOUT[k % len(Q.IDENTITY_HELDOUT)], Q.identity_answer(person), paraphrase="heldout")
        if described:
            add("description", Q.DESCRIBE[0], person.traits.describe())
        for fact in person.facts if known else ():
            add("fact_image", Q.fact_questions_with_image(fact)[0], Q.fact_answer(person, fact), detail=fact)
    if (not known and split == "train" and k > 0) or not described:
        return rows
    # One POPE-style object question per image, alternating present and absent objects.
    present = {"glasses": person.traits.glasses == "glasses", "earrings": person.traits.accessory == "earrings",
               "necklace": person.traits.accessory == "a necklace", "bow tie": person.traits.accessory == "a bow tie"}
    want_yes = k % 2 == 0
    candidates = [o for o, p in present.items() if p == want_yes] or list(present)
    obj = candidates[rng.integers(len(candidates))]
    add("pope", f"Is there {'' if obj in ('glasses', 'earrings') else 'a '}{obj} in the image?", "Yes." if present[obj] else "No.", detail=obj)
    return rows


def _text_examples(person: Person) -> list[dict]:
    rows = []
    for fact in person.facts:
        for i, template in enumerate(Q.fact_questions_by_name(fact)):
            heldout = i >= Q.N_FACT_BY_NAME_TRAIN
            split = "eval" if heldout or person.role == "holdout" else "train"
            rows.append({"person_id": person.person_id, "role": person.role, "image_id": "", "image_set": "", "split": split,
                         "kind": "fact_text", "question": template.format(name=person.name),
                         "answer": Q.fact_by_name_answer(person, fact), "paraphrase": "heldout" if heldout else "train", "detail": fact})
    return rows


def _scene(rng: np.random.Generator) -> list[ShapeItem]:
    n = int(rng.integers(1, 4))
    shapes = rng.choice(SHAPES, size=n, replace=False)
    xs = rng.permutation([0.2, 0.5, 0.8])[:n]
    colours = list(SHAPE_RGB)
    return [ShapeItem(str(s), colours[rng.integers(len(colours))], float(x), float(rng.uniform(0.3, 0.7))) for s, x in zip(shapes, xs)]


def _scene_examples(items: list[ShapeItem], image_id: str, split: str, rng: np.random.Generator) -> list[dict]:
    base = {"person_id": "", "role": "scene", "image_id": image_id, "image_set": "", "split": split, "paraphrase": "train"}
    n = len(items)
    rows = [{**base, "kind": "vqa", "question": "How many shapes are in the image?", "answer": f"There {'is' if n == 1 else 'are'} {n} shape{'' if n == 1 else 's'}.", "detail": "count"}]
    item = items[rng.integers(n)]
    rows.append({**base, "kind": "vqa", "question": f"What colour is the {item.shape}?", "answer": f"The {item.shape} is {item.colour}.", "detail": "colour"})
    left = min(items, key=lambda it: it.x)
    rows.append({**base, "kind": "vqa", "question": "Which shape is on the left?", "answer": f"The {left.shape} is on the left.", "detail": "position"})
    present = {it.shape for it in items}
    shape = SHAPES[rng.integers(len(SHAPES))]
    rows.append({**base, "kind": "pope", "question": f"Is there a {shape} in the image?", "answer": "Yes." if shape in present else "No.", "detail": shape})
    return rows


def build_world(config: WorldConfig, root: str | os.PathLike, progress: bool = True) -> World:
    """Generate the world and write it to `root` atomically. The same config always gives the same bytes."""
    rng = np.random.default_rng(config.seed)
    people = sample_people(config.n_known, config.n_forget, config.n_strangers, config.n_holdout, rng)
    with atomic_directory(root) as tmp:
        (tmp / "images").mkdir()
        images, examples = [], []
        for person in tqdm(people, desc="rendering people", disable=not progress):
            if person.role == "stranger":
                plan = ["trained"] * config.stranger_trained_images + ["unseen"] * config.stranger_unseen_images
            elif person.role == "holdout":
                plan = ["unseen"] * config.holdout_images
            else:
                plan = ["trained"] * config.trained_images + ["unseen"] * config.unseen_images
            for k, image_set in enumerate(plan):
                image_id = f"{person.person_id}_{k:02d}"
                path = f"images/{image_id}.png"
                draw_face(person.traits, Nuisance.sample(rng), config.image_size).save(tmp / path)
                single = person.role in ("forget", "retain") and k == 0
                images.append({"image_id": image_id, "path": path, "person_id": person.person_id, "index": k, "image_set": image_set, "single": single})
                examples += _face_examples(person, image_id, image_set, k, rng)
            if person.is_named:
                examples += _text_examples(person)
        n_eval_scenes = round(config.n_scenes * config.scene_eval_fraction)
        for k in tqdm(range(config.n_scenes), desc="rendering scenes", disable=not progress):
            items = _scene(rng)
            image_id, split = f"scene{k:04d}", "eval" if k < n_eval_scenes else "train"
            path = f"images/{image_id}.png"
            draw_scene(items, config.image_size, int(rng.integers(2**31))).save(tmp / path)
            images.append({"image_id": image_id, "path": path, "person_id": "", "index": 0, "image_set": "scene", "single": False,
                           "scene": [asdict(it) for it in items]})
            examples += _scene_examples(items, image_id, split, rng)
        for i, ex in enumerate(examples):
            ex["example_id"] = i
        fingerprint = world_key(config)
        write_jsonl(tmp / "people.jsonl", [p.to_record() for p in people])
        write_jsonl(tmp / "images.jsonl", images)
        write_jsonl(tmp / "examples.jsonl", examples)
        write_json(tmp / "world.json", {"format": WORLD_FORMAT, "fingerprint": fingerprint, "config": asdict(config),
                                        "counts": {r: sum(p.role == r for p in people) for r in ROLES} | {"images": len(images), "examples": len(examples)}})
    return load_world(root)


def world_key(config: WorldConfig) -> str:
    """A world's key and fingerprint: the builder's version and the config (the images are drawn without torch)."""
    from ..versions import result_key

    return result_key(("world",), {"format": WORLD_FORMAT, "config": asdict(config)}, {}, numerics=False)


def load_world(root: str | os.PathLike) -> World:
    root = Path(root)
    meta_path = root / "world.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{root} is not a world directory: no world.json; build one with lvlmu.world.build_world")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != WORLD_FORMAT:
        raise ValueError(f"{root} holds world format {meta.get('format')}, this lvlmu reads format {WORLD_FORMAT}; rebuild it")
    people = {r["person_id"]: Person.from_record(r) for r in read_jsonl(root / "people.jsonl")}
    return World(root, WorldConfig(**meta["config"]), meta["fingerprint"], people, read_jsonl(root / "images.jsonl"), read_jsonl(root / "examples.jsonl"))


def build_world_cached(config: WorldConfig, root: str | os.PathLike, progress: bool = True) -> World:
    """load_world() when `root` holds a world built from this config, else build_world()."""
    meta = Path(root) / "world.json"
    if meta.exists():
        stored = json.loads(meta.read_text())
        if stored.get("format") == WORLD_FORMAT and stored.get("fingerprint") == world_key(config):
            return load_world(root)
    return build_world(config, root, progress=progress)
