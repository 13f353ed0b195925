"""Pixel checks: every trait value is actually drawn, and drawn where it belongs."""
import numpy as np
import pytest

from lvlmu.world.render import BACKGROUNDS, BOWTIE_RGB, EARRING_RGB, GLASSES_RGB, NECKLACE_RGB, SHAPE_RGB, Nuisance, ShapeItem, draw_face, draw_scene
from lvlmu.world.traits import EYE_RGB, HAIR_RGB, SKIN_RGB, TRAIT_VALUES, Traits

SIZE = 32
PLAIN = Nuisance(dx=0.0, dy=0.0, scale=0.9, background=0, noise_seed=0, noise_std=0.0)
DEFAULT = Traits("brown", "short", "blue", "light", "round", "no glasses", "no accessory")


def pixels(traits: Traits, size: int = SIZE) -> np.ndarray:
    return np.asarray(draw_face(traits, PLAIN, size), dtype=int)


def mask(image: np.ndarray, rgb, tol: int = 12) -> np.ndarray:
    return np.abs(image - np.array(rgb)).max(axis=-1) <= tol


def with_(**change) -> Traits:
    return Traits(**{**DEFAULT.__dict__, **change})


@pytest.mark.parametrize("colour", TRAIT_VALUES["hair_colour"])
def test_hair_colour_is_drawn_above_the_eyes(colour):
    image = pixels(with_(hair_colour=colour))
    hair = mask(image, HAIR_RGB[colour])
    rows = np.nonzero(hair)[0]
    assert hair.sum() >= 20 and rows.min() < SIZE * 0.4


@pytest.mark.parametrize("colour", TRAIT_VALUES["eye_colour"])
def test_eye_colour_is_drawn_twice_side_by_side(colour):
    eyes = mask(pixels(with_(eye_colour=colour)), EYE_RGB[colour], tol=25)
    cols = np.nonzero(eyes)[1]
    assert eyes.sum() >= 2 and cols.min() < SIZE / 2 < cols.max(), "both eyes must show their iris colour"
    for other, rgb in EYE_RGB.items():
        if other != colour:
            assert mask(pixels(with_(eye_colour=colour)), rgb, tol=10).sum() == 0 or other == "grey"


@pytest.mark.parametrize("tone", TRAIT_VALUES["skin_tone"])
def test_skin_tone_fills_the_face(tone):
    assert mask(pixels(with_(skin_tone=tone)), SKIN_RGB[tone]).sum() >= 45


def test_face_shapes_have_their_proportions():
    def box(shape):
        skin = mask(pixels(with_(face_shape=shape, hair_style="short")), SKIN_RGB["light"])
        rows, cols = np.nonzero(skin)
        return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1, skin.sum()

    round_h, round_w, _ = box("round")
    oval_h, oval_w, _ = box("oval")
    _, _, round_area = box("round")
    square_h, square_w, square_area = box("square")
    assert oval_h / oval_w > round_h / round_w + 0.15, "an oval face is taller for its width than a round one"
    assert square_area > round_area, "a square face fills its box more than a round one"
    assert square_w >= round_w + 3, "a square face is wider than a round one"


def test_hair_styles_differ_where_they_should():
    def hair(style, tol=12):
        return mask(pixels(with_(hair_style=style)), HAIR_RGB["brown"], tol)

    def top_row(hair_mask):
        return np.nonzero(hair_mask.any(axis=1))[0].min()

    short, long_, bun = hair("short"), hair("long"), hair("bun")
    middle = slice(int(SIZE * 0.55), int(SIZE * 0.8))
    assert long_[middle].sum() > short[middle].sum() + 6, "long hair falls beside the face"
    assert top_row(bun) < top_row(short) - 2, "a bun rises above the head"
    centre = slice(SIZE // 2 - 2, SIZE // 2 + 2)
    assert hair("bun")[: top_row(short), centre].sum() >= 4, "the bun sits in the middle"
    spiky = hair("spiky", tol=60)
    assert top_row(spiky) < top_row(hair("short", tol=60)) - 1, "spikes rise above the head"
    above = spiky[: top_row(hair("short", tol=60))]
    assert above.sum() >= 4 and not above[:, centre].all(), "spikes are separate points, not a bun"


def test_glasses_are_dark_frames_around_the_eyes():
    dark_with = mask(pixels(with_(glasses="glasses")), GLASSES_RGB, tol=60).sum()
    dark_without = mask(pixels(with_(glasses="no glasses")), GLASSES_RGB, tol=60).sum()
    assert dark_with >= dark_without + 16


@pytest.mark.parametrize("accessory, rgb", [("earrings", EARRING_RGB), ("a necklace", NECKLACE_RGB), ("a bow tie", BOWTIE_RGB)])
def test_each_accessory_is_drawn_and_absent_otherwise(accessory, rgb):
    assert mask(pixels(with_(accessory=accessory)), rgb, tol=30).sum() >= 2
    assert mask(pixels(with_(accessory="no accessory")), rgb, tol=30).sum() == 0


def test_nuisance_moves_the_face_and_changes_the_background():
    moved = Nuisance(dx=0.07, dy=0.0, scale=0.9, background=1, noise_seed=0, noise_std=0.0)
    a, b = pixels(DEFAULT), np.asarray(draw_face(DEFAULT, moved, SIZE), dtype=int)
    assert tuple(a[0, 0]) == BACKGROUNDS[0] and tuple(b[0, 0]) == BACKGROUNDS[1]
    skin_a, skin_b = mask(a, SKIN_RGB["light"]), mask(b, SKIN_RGB["light"])
    assert np.nonzero(skin_b)[1].mean() > np.nonzero(skin_a)[1].mean() + 1


def test_scene_draws_each_shape_in_its_colour():
    items = [ShapeItem("circle", "red", 0.2, 0.5), ShapeItem("square", "blue", 0.8, 0.5)]
    image = np.asarray(draw_scene(items, SIZE, noise_seed=0), dtype=int)
    red, blue = mask(image, SHAPE_RGB["red"], 30), mask(image, SHAPE_RGB["blue"], 30)
    assert red.sum() >= 10 and blue.sum() >= 10
    assert np.nonzero(red)[1].mean() < SIZE / 2 < np.nonzero(blue)[1].mean()
    assert mask(image, SHAPE_RGB["green"], 30).sum() == 0
