"""The notebooks: committed without outputs, and each runs top to bottom in its quick mode.

Quick mode is injected papermill-style: a cell setting the parameters is added after the cell
tagged `parameters`, and the kernel runs on the CPU with this checkout first on its PYTHONPATH
(so it imports this worktree's package, not an installed one).
"""

import glob
import os

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
NAMES = [os.path.basename(path) for path in NOTEBOOKS]
EXPECTED = [
    "01_quickstart.ipynb",
    "02_noise_and_subset_size.ipynb",
    "03_what_alpha_sees.ipynb",
    "04_your_images.ipynb",
    "05_tuning.ipynb",
]
# What each notebook must print in quick mode (the story reached its end).
MUST_PRINT = {
    "01_quickstart.ipynb": [
        "of 60000 training labels are wrong",
        "AUROC of the score",
        "exported to",
    ],
    "02_noise_and_subset_size.ipynb": ["noise 60%  N=4"],
    "03_what_alpha_sees.ipynb": ["alpha_floor at the last epoch"],
    "04_your_images.ipynb": ["files sit in the wrong class folder", "SavedModel predicts"],
    "05_tuning.ipynb": ["best subset size"],
}


def inject_parameters(notebook, **parameters):
    """Adds a cell setting `parameters` after the `parameters`-tagged cell, as papermill does."""
    index = next(
        (
            i
            for i, cell in enumerate(notebook.cells)
            if "parameters" in cell.get("metadata", {}).get("tags", [])
        ),
        None,
    )
    if index is None:
        raise ValueError("the notebook has no cell tagged 'parameters'.")
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell("# Injected parameters\n" + source)
    cell.metadata["tags"] = ["injected-parameters"]
    cell["id"] = "injected-parameters"
    notebook.cells.insert(index + 1, cell)
    return notebook


def test_the_five_notebooks_are_there():
    assert NAMES == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_committed_notebooks_hold_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, f"{os.path.basename(path)}: cells {dirty} hold outputs; clear them."
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "QUICK" in tagged[0].source


def _outputs(notebook) -> str:
    return "".join(
        output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_runs_in_quick_mode(path, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(path, as_version=4)
    figures = tmp_path / "figures"
    inject_parameters(notebook, QUICK=True, FIGURES_DIR=str(figures))
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = _outputs(notebook)
    for text in MUST_PRINT[os.path.basename(path)]:
        assert text in outputs, f"{text!r} not printed"
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, "the notebook showed no figure"
    assert sorted(os.listdir(figures)), "the notebook saved no figure into FIGURES_DIR"


def test_kernel_imports_this_checkout(monkeypatch, tmp_path):
    """The notebooks must exercise this worktree's package, not an installed copy."""
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import importlib.util, os\n"
            "print(os.path.dirname(importlib.util.find_spec('keras_metacleaner').origin))"
        )
    ]
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    printed = _outputs(notebook).strip()
    assert printed == os.path.join(ROOT, "keras_metacleaner")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_papermill_finds_the_parameters(path):
    """`make figures` runs `papermill -p QUICK False`: its cell must land after ours."""
    papermill = pytest.importorskip("papermill.parameterize")
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:  # as papermill's execute_notebook prepares them
        cell.metadata.setdefault("tags", [])
    notebook.metadata["papermill"] = {}
    done = papermill.parameterize_notebook(notebook, {"QUICK": False, "FIGURES_DIR": "/x"})
    tags = [cell.metadata.get("tags", []) for cell in done.cells]
    index = next(i for i, t in enumerate(tags) if "parameters" in t)
    assert "injected-parameters" in tags[index + 1]
    assert "QUICK = False" in done.cells[index + 1].source
