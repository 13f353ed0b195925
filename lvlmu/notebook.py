"""One call at the top of every notebook: quiet, legible and reproducible output."""
from __future__ import annotations

import os
import warnings


def setup(threads: int | None = None, seed: int = 0) -> None:
    """Text progress instead of widgets (widgets need scripts that an offline book cannot load), legible figures, fixed seeds.
    `threads` defaults to $LVLMU_THREADS (the pipeline sets it per notebook), else 2."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*torchvision.*")
    torch.set_num_threads(threads or int(os.environ.get("LVLMU_THREADS", 2)))
    transformers.set_seed(seed)
    pd.set_option("display.precision", 1)
    pd.set_option("display.max_colwidth", 120)
    plt.rcParams.update({"figure.dpi": 110, "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10})
