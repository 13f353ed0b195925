"""Probes: generation and exact, rule-based measures of what a model reveals."""
from .generate import generate_answers
from .knowledge import is_exact_description, is_stranger_style, leaks_name, mentions, names_exactly, states_fact

__all__ = ["generate_answers", "is_exact_description", "is_stranger_style", "leaks_name", "mentions", "names_exactly", "states_fact"]
