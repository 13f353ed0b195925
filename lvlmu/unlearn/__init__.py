"""Unlearning: methods as Trainer subclasses in a registry, their data, and the run that applies one to a model."""
from .data import REFUSALS, forget_examples, resolve_forget, retain_examples
from .methods import METHODS, LossWeights, UnlearnTrainer, get_method, nll, sequence_logprob
from .run import UnlearnConfig, add_lora, forget_data, unlearn, unlearn_cached

__all__ = ["METHODS", "REFUSALS", "LossWeights", "UnlearnConfig", "UnlearnTrainer", "add_lora", "forget_data", "unlearn_cached", "forget_examples", "get_method",
           "nll", "resolve_forget", "retain_examples", "sequence_logprob", "unlearn"]
