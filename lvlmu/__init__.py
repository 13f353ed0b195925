"""lvlmu: a reproducible study of machine unlearning in vision-language models."""
import logging

__version__ = "0.1.0"

# peft imports torchao (the quantization attack's library) whenever it is installed: on a CPU its CUDA kernels fail to
# load, and torch warns about its enums; neither matters here, and both would fill every log and chapter.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)
