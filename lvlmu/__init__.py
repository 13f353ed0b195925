"""lvlmu: a reproducible study of machine unlearning in vision-language models."""
__version__ = "0.1.0"
