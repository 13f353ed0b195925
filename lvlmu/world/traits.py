"""The visual traits of the world's people: their vocabulary, colours and the sentence that describes them."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

# Each trait's values, in a fixed order. The renderer draws every value so that it is unambiguous at 32 px.
TRAIT_VALUES: dict[str, tuple[str, ...]] = {
    "hair_colour": ("black", "brown", "blonde", "red", "grey"),
    "hair_style": ("short", "long", "bun", "spiky"),
    "eye_colour": ("brown", "blue", "green", "grey"),
    "skin_tone": ("light", "medium", "dark"),
    "face_shape": ("round", "oval", "square"),
    "glasses": ("glasses", "no glasses"),
    "accessory": ("no accessory", "earrings", "a necklace", "a bow tie"),
}

HAIR_RGB = {"black": (25, 25, 25), "brown": (115, 65, 25), "blonde": (240, 205, 70), "red": (205, 45, 25), "grey": (150, 150, 150)}
EYE_RGB = {"brown": (110, 55, 10), "blue": (30, 100, 240), "green": (20, 175, 50), "grey": (175, 175, 175)}
SKIN_RGB = {"light": (250, 215, 185), "medium": (205, 150, 105), "dark": (115, 75, 50)}


@dataclass(frozen=True)
class Traits:
    """One person's visible traits, each a value of TRAIT_VALUES. The world's people have all of them; a reader's
    concept may state some or none (None: not known), and grounding is then judged on the known ones only."""

    hair_colour: str | None = None
    hair_style: str | None = None
    eye_colour: str | None = None
    skin_tone: str | None = None
    face_shape: str | None = None
    glasses: str | None = None
    accessory: str | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and value not in TRAIT_VALUES[name]:
                raise ValueError(f"{name}={value!r} is not one of {TRAIT_VALUES[name]}")

    @property
    def known(self) -> dict[str, str]:
        """The traits whose values are known."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    @property
    def complete(self) -> bool:
        return len(self.known) == len(TRAIT_VALUES)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def distance(self, other: "Traits") -> int:
        """Hamming distance: how many traits differ."""
        return sum(a != b for a, b in zip(self.as_tuple(), other.as_tuple()))

    @property
    def hair_phrase(self) -> str:
        if self.hair_style == "bun":
            return f"{self.hair_colour} hair in a bun"
        return f"{self.hair_style} {self.hair_colour} hair"

    def describe(self) -> str:
        """The one canonical description: every trait, always in the same order and words."""
        if not self.complete:
            raise ValueError(f"a description needs every trait; known: {sorted(self.known)}")
        article = "an" if self.face_shape[0] in "aeiou" else "a"
        return (
            f"They have {self.hair_phrase}, {self.eye_colour} eyes, {self.skin_tone} skin and {article} {self.face_shape} face. "
            f"They wear {self.glasses} and {self.accessory}."
        )


TRAIT_NAMES: tuple[str, ...] = tuple(TRAIT_VALUES)


def _alternatives(values) -> str:
    return "|".join(sorted((v.removeprefix("a ") for v in values), key=len, reverse=True))


_HAIR_C, _EYE_C = _alternatives(TRAIT_VALUES["hair_colour"]), _alternatives(TRAIT_VALUES["eye_colour"])
_TRAIT_PATTERNS: dict[str, list[tuple[re.Pattern, int]]] = {
    "hair_colour": [(re.compile(rf"\b({_HAIR_C}) hair\b"), 1), (re.compile(rf"\bhair is ({_HAIR_C})\b"), 1)],
    "hair_style": [(re.compile(rf"\b(short|long|spiky) (?:{_HAIR_C}) hair\b"), 1), (re.compile(r"\bhair in a (bun)\b"), 1)],
    "eye_colour": [(re.compile(rf"\b({_EYE_C}) eyes\b"), 1), (re.compile(rf"\beyes are ({_EYE_C})\b"), 1)],
    "skin_tone": [(re.compile(r"\b(light|medium|dark) skin\b"), 1)],
    "face_shape": [(re.compile(r"\b(round|oval|square) face\b"), 1)],
    "glasses": [(re.compile(r"\b(no glasses|glasses)\b"), 1)],
    "accessory": [(re.compile(r"\b(no accessory|earrings|a necklace|a bow tie)\b"), 1)],
}


def parse_traits(text: str) -> dict[str, set[str]]:
    """Every trait value that a text asserts, per trait. An empty set means the text does not mention the trait."""
    text = text.lower()
    found: dict[str, set[str]] = {name: set() for name in TRAIT_VALUES}
    for name, patterns in _TRAIT_PATTERNS.items():
        for pattern, group in patterns:
            for match in pattern.finditer(text):
                found[name].add(match.group(group))
    return found


def description_is_exact(text: str, traits: Traits) -> bool:
    """True when the text states every known trait, each with its true value and no other (False when none is known)."""
    found = parse_traits(text)
    return bool(traits.known) and all(found[name] == {value} for name, value in traits.known.items())
