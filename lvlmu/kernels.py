"""A papermill engine that runs notebooks one after another in a kept kernel.

The grid's 141 short run notebooks would each start a kernel and import torch and transformers (about 7 s on one
thread). This engine starts one kernel per process, working directory and thread count, and clears its namespace
(`%reset -f`) after every notebook, so a notebook sees none of the previous one's variables; imported modules stay.
"""
from __future__ import annotations

import atexit
import os

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines

ENGINE_NAME = "lvlmu-warm-kernel"
_kernels: dict[tuple, AsyncKernelManager] = {}


def warm_kernel(kernel_name: str) -> AsyncKernelManager:
    """This process's kernel for `kernel_name` in the current directory and thread settings; a dead one is replaced.
    The kernel starts (inheriting directory and environment) when the first notebook runs in it."""
    key = (kernel_name, os.getcwd(), os.environ.get("LVLMU_THREADS"), os.environ.get("OMP_NUM_THREADS"))
    manager = _kernels.get(key)
    if manager is not None and manager.has_kernel and not run_sync(manager.is_alive)():
        run_sync(manager.cleanup_resources)()
        manager = None
    if manager is None:
        manager = _kernels[key] = AsyncKernelManager(kernel_name=kernel_name)
    return manager


def close_warm_kernels() -> None:
    """Shut down this process's kept kernels (also done at exit)."""
    while _kernels:
        _, manager = _kernels.popitem()
        if manager.has_kernel:
            run_sync(manager.shutdown_kernel)(now=True)


class WarmKernelEngine(NBClientEngine):
    """papermill's nbclient engine with the kernel kept between notebooks."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs):
        client = PapermillNotebookClient(nb_man, km=warm_kernel(kernel_name), kernel_name=kernel_name,
                                         timeout=execution_timeout, startup_timeout=start_timeout,
                                         log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
        try:
            return client.execute()
        finally:
            if client.kc is not None:
                if run_sync(client.km.is_alive)():
                    client.wait_for_reply(client.kc.execute("%reset -f", silent=True, store_history=False))
                client.kc.stop_channels()


papermill_engines.register(ENGINE_NAME, WarmKernelEngine)
atexit.register(close_warm_kernels)
