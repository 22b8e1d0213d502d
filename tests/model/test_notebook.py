"""The notebook tells its story end to end (small mode: a few dozen photos aligned on the fly)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model.settings import REPO_ROOT, get_settings

NOTEBOOK = REPO_ROOT / "notebooks" / "siamese_on_lfw.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.lfw]


def test_notebook_runs_in_small_mode(lfw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbclient
    import nbformat

    base = get_settings().base_model_path
    if not base.is_file():
        pytest.skip(f"no shipped model at {base}")
    monkeypatch.setenv("FACEATT_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("FACEATT_LFW_DIR", str(lfw_dir))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend shows the figures
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                   os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO_ROOT)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any(o.get("output_type") == "display_data" for o in outputs)  # the figures


def test_committed_notebook_has_no_outputs() -> None:
    """Outputs would hold LFW faces; the repository keeps none."""
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
