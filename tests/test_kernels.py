"""The kept-kernel engine: notebooks share one kernel process but not their variables."""
import json

import nbformat
import papermill
import pytest

from lvlmu.kernels import ENGINE_NAME, close_warm_kernels
from lvlmu.study import default_kernel


def notebook(path, source):
    cell = nbformat.v4.new_code_cell(source)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return path


def output_of(path) -> dict:
    return json.loads(nbformat.read(path, as_version=4).cells[0].outputs[0]["text"])


@pytest.fixture
def kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    close_warm_kernels()


def run(template, output, engine=ENGINE_NAME):
    papermill.execute_notebook(str(template), str(output), kernel_name=default_kernel(), progress_bar=False, engine_name=engine)


REPORT = "import json, os, sys\nprint(json.dumps({'pid': os.getpid(), 'leftover': 'leftover' in globals(), 'json_imported': 'json' in sys.modules}))"


def test_the_kernel_is_kept_and_the_namespace_cleared(kept):
    first = notebook(kept / "first.ipynb", "leftover = 1\n" + REPORT)
    second = notebook(kept / "second.ipynb", REPORT)
    run(first, kept / "first-out.ipynb")
    run(second, kept / "second-out.ipynb")
    before, after = output_of(kept / "first-out.ipynb"), output_of(kept / "second-out.ipynb")
    assert before["leftover"] and not after["leftover"]
    assert after["pid"] == before["pid"] and after["json_imported"]
    # papermill's own engine starts a fresh kernel every time
    run(second, kept / "fresh-out.ipynb", engine=None)
    assert output_of(kept / "fresh-out.ipynb")["pid"] != before["pid"]


def test_a_failing_notebook_leaves_the_kernel_usable(kept):
    failing = notebook(kept / "failing.ipynb", "leftover = 1\nraise ValueError('boom')")
    with pytest.raises(papermill.PapermillExecutionError, match="boom"):
        run(failing, kept / "failing-out.ipynb")
    run(notebook(kept / "after.ipynb", REPORT), kept / "after-out.ipynb")
    assert not output_of(kept / "after-out.ipynb")["leftover"]


def test_a_dead_kernel_is_replaced(kept):
    run(notebook(kept / "first.ipynb", REPORT), kept / "first-out.ipynb")
    with pytest.raises(Exception):
        run(notebook(kept / "die.ipynb", "import os\nos._exit(1)"), kept / "die-out.ipynb")
    run(notebook(kept / "again.ipynb", REPORT), kept / "again-out.ipynb")
    assert output_of(kept / "again-out.ipynb")["pid"] != output_of(kept / "first-out.ipynb")["pid"]
