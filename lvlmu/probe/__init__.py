"""Probes: generation and exact, rule-based measures of what a model reveals.

generate (batched greedy answers), knowledge (name and fact rules), aftermath (answer classes), likelihood (log-probs,
MIA, truth ratio, forget quality), perturb (visual perturbations), recall (what pretraining taught), suite (the
registered metrics and run_probes), store (results on disk), compare (across models).
"""
from .generate import generate_answers
from .knowledge import is_exact_description, is_stranger_style, leaks_name, mentions, names_exactly, states_fact

__all__ = ["generate_answers", "is_exact_description", "is_stranger_style", "leaks_name", "mentions", "names_exactly", "states_fact"]
