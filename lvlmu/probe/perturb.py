"""Visual perturbations for privacy probes: does forgetting survive a changed photograph?"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps


def crop(image: Image.Image) -> Image.Image:
    """The central 80%, resized back to the original size."""
    w, h = image.size
    box = (round(w * 0.1), round(h * 0.1), round(w * 0.9), round(h * 0.9))
    return image.crop(box).resize((w, h), Image.Resampling.BILINEAR)


def flip(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


def noise(image: Image.Image, std: float = 12.0, seed: int = 0) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    pixels += np.random.default_rng(seed).normal(0.0, std, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def grayscale(image: Image.Image) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


PERTURBATIONS = {"crop": crop, "flip": flip, "noise": noise, "grayscale": grayscale}


def perturbed_loader(load_image, perturbation: str):
    """An image loader that applies one named perturbation to every image it loads."""
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {perturbation!r}; the perturbations are {sorted(PERTURBATIONS)}")
    return lambda image_id: PERTURBATIONS[perturbation](load_image(image_id))
