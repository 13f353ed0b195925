"""Drawing faces and shape scenes with PIL.

Everything is drawn at SUPERSAMPLE times the target size and reduced with a box filter, so colours stay pure and
edges stay clean at 32 px. Nuisance variation (position, scale, background, pixel noise) comes from the caller's rng.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .traits import EYE_RGB, HAIR_RGB, SKIN_RGB, Traits

SUPERSAMPLE = 4
BACKGROUNDS = ((205, 225, 250), (210, 240, 210), (235, 222, 250), (225, 225, 225), (250, 240, 200))
GLASSES_RGB = (20, 20, 20)
EARRING_RGB = (255, 40, 160)  # pink: yellow earrings vanished against blonde hair
NECKLACE_RGB = (0, 175, 175)
BOWTIE_RGB = (150, 30, 200)
SHAPE_RGB = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 70, 230), "yellow": (240, 210, 0)}
SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Nuisance:
    """Per-image variation that carries no identity."""

    dx: float
    dy: float
    scale: float
    background: int
    noise_seed: int
    noise_std: float = 4.0

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Nuisance":
        return cls(
            dx=float(rng.uniform(-0.07, 0.07)),
            dy=float(rng.uniform(-0.05, 0.05)),
            scale=float(rng.uniform(0.82, 0.98)),
            background=int(rng.integers(len(BACKGROUNDS))),
            noise_seed=int(rng.integers(2**31)),
        )


def _finish(canvas: Image.Image, size: int, nuisance_seed: int, noise_std: float) -> Image.Image:
    small = canvas.resize((size, size), Image.Resampling.BOX)
    if noise_std <= 0:
        return small
    pixels = np.asarray(small, dtype=np.float32)
    pixels += np.random.default_rng(nuisance_seed).normal(0.0, noise_std, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def draw_face(traits: Traits, nuisance: Nuisance, size: int) -> Image.Image:
    """Render one face. Geometry is in units of the canvas side; the face is centred at (0.5+dx, 0.52+dy)."""
    side = size * SUPERSAMPLE
    canvas = Image.new("RGB", (side, side), BACKGROUNDS[nuisance.background])
    draw = ImageDraw.Draw(canvas)
    s = nuisance.scale
    cx, cy = (0.5 + nuisance.dx) * side, (0.5 + nuisance.dy) * side
    # Shapes differ in outline and in proportions: round is as wide as tall, oval taller, square wider.
    half_w = {"round": 0.23, "oval": 0.16, "square": 0.30}[traits.face_shape] * side * s
    half_h = {"round": 0.23, "oval": 0.31, "square": 0.21}[traits.face_shape] * side * s
    hair, skin = HAIR_RGB[traits.hair_colour], SKIN_RGB[traits.skin_tone]
    top = cy - half_h

    def box(x0, y0, x1, y1):
        return [cx + x0, cy + y0, cx + x1, cy + y1]

    # Hair behind the face.
    if traits.hair_style == "long":
        draw.rectangle(box(-half_w - 0.1 * side * s, -half_h * 0.95, half_w + 0.1 * side * s, half_h * 1.4), fill=hair)
    if traits.hair_style == "bun":
        r = half_w * 0.5
        draw.ellipse([cx - r, top - r * 1.7, cx + r, top + r * 0.3], fill=hair)
    if traits.hair_style == "spiky":
        n = 4
        for i in range(n):
            x0 = cx - half_w * 1.05 + 2.1 * half_w * i / n
            x1 = x0 + 2.1 * half_w / n
            draw.polygon([(x0, top + half_h * 0.25), (x1, top + half_h * 0.25), ((x0 + x1) / 2, top - half_h * 0.8)], fill=hair)
    # Face.
    face_box = box(-half_w, -half_h, half_w, half_h)
    if traits.face_shape == "square":
        draw.rectangle(face_box, fill=skin)
    else:
        draw.ellipse(face_box, fill=skin)
    # Hair cap on top of the head (every style has one).
    cap_bottom = -half_h * 0.45
    draw.chord(box(-half_w * 1.05, -half_h * 1.1, half_w * 1.05, half_h * 0.25), 180, 360, fill=hair)
    draw.rectangle(box(-half_w * 1.0, -half_h * 0.45, half_w * 1.0, cap_bottom + half_h * 0.05), fill=hair)
    # Eyes: white sclera with a large coloured iris.
    eye_y, eye_dx = -half_h * 0.05, half_w * 0.45
    ew, eh = half_w * 0.32, half_h * 0.2
    for sign in (-1, 1):
        ex = sign * eye_dx
        draw.ellipse(box(ex - ew, eye_y - eh, ex + ew, eye_y + eh), fill=(255, 255, 255))
        iris = ew * 0.85
        draw.ellipse(box(ex - iris, eye_y - iris, ex + iris, eye_y + iris), fill=EYE_RGB[traits.eye_colour])
        if traits.glasses == "glasses":
            g = ew * 1.35
            draw.ellipse(box(ex - g, eye_y - g, ex + g, eye_y + g), outline=GLASSES_RGB, width=max(2, int(side * 0.045)))
    if traits.glasses == "glasses":
        draw.line(box(-eye_dx + ew * 1.35, eye_y, eye_dx - ew * 1.35, eye_y), fill=GLASSES_RGB, width=max(2, int(side * 0.045)))
    # Mouth.
    draw.line(box(-half_w * 0.3, half_h * 0.5, half_w * 0.3, half_h * 0.5), fill=(120, 30, 30), width=max(2, int(side * 0.015)))
    # Accessory.
    if traits.accessory == "earrings":
        r = half_w * 0.24
        for sign in (-1, 1):
            ex = sign * half_w * 1.05
            draw.ellipse(box(ex - r, half_h * 0.2 - r, ex + r, half_h * 0.2 + r), fill=EARRING_RGB)
    elif traits.accessory == "a necklace":
        draw.arc(box(-half_w * 0.8, half_h * 0.55, half_w * 0.8, half_h * 1.45), 20, 160, fill=NECKLACE_RGB, width=max(3, int(side * 0.06)))
    elif traits.accessory == "a bow tie":
        y = half_h * 1.2
        w, h = half_w * 0.6, half_h * 0.26
        draw.polygon([(cx, cy + y), (cx - w, cy + y - h), (cx - w, cy + y + h)], fill=BOWTIE_RGB)
        draw.polygon([(cx, cy + y), (cx + w, cy + y - h), (cx + w, cy + y + h)], fill=BOWTIE_RGB)
    return _finish(canvas, size, nuisance.noise_seed, nuisance.noise_std)


@dataclass(frozen=True)
class ShapeItem:
    shape: str
    colour: str
    x: float  # centre, in units of the canvas side
    y: float


def draw_scene(items: list[ShapeItem], size: int, noise_seed: int) -> Image.Image:
    """A general visual-QA scene: a few coloured shapes on white."""
    side = size * SUPERSAMPLE
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    r = 0.13 * side
    for item in items:
        cx, cy, rgb = item.x * side, item.y * side, SHAPE_RGB[item.colour]
        if item.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
        elif item.shape == "square":
            draw.rectangle([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=rgb)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=rgb)
    return _finish(canvas, size, noise_seed, 3.0)
