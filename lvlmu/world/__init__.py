"""The synthetic world: fictitious people with private facts and visible traits, their images and questions."""
from .build import World, WorldConfig, build_world, build_world_cached, load_world
from .concepts import ConceptError, export_concept, load_concepts
from .people import Person
from .traits import TRAIT_NAMES, TRAIT_VALUES, Traits

__all__ = ["ConceptError", "export_concept", "load_concepts", "World", "WorldConfig", "build_world", "build_world_cached", "load_world", "Person", "Traits", "TRAIT_NAMES", "TRAIT_VALUES"]
