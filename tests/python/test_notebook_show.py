"""``res.show()`` renders exactly once in Jupyter (issue 21, item 2): a notebook executed through nbclient, each
cell's outputs counted. Before, show() displayed the view and also returned it, and the returned object's
``_repr_html_`` rendered a second copy when the call ended a cell."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

SETUP = """import os, warnings
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
import attnscope as ats
g = torch.Generator().manual_seed(0)
res = ats.AttentionResult(weights=torch.rand(2, 1, 2, 4, 4, generator=g).softmax(-1), layers=[0, 1],
                          tokens=[["a", "b", "c", "d"]])
attr = ats.AttributionResult(scores=torch.tensor([[0.5, -1.0, 2.0]]), raw=torch.zeros(1, 3, 1),
                             tokens=[["x", "y", "z"]], input_ids=torch.tensor([[1, 2, 3]]),
                             attention_mask=torch.ones(1, 3, dtype=torch.long), method="saliency", target="t")"""

CELLS = {
    "ends_in_show": "res.show()",
    "show_with_kind": "res.show('model')",
    "show_mid_cell": "res.show('head')\nx = 1",
    "two_shows": "attr.show()\nres.show()",
    "ends_in_view": "res.view('head')",
    "show_value": "value = res.show()\nprint(value)",
}


@pytest.fixture(scope="module")
def executed():
    nb = new_notebook(cells=[new_code_cell(SETUP)] + [new_code_cell(src) for src in CELLS.values()])
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    return dict(zip(CELLS, nb.cells[1:]))


def _views(cell) -> list[str]:
    """The rendered views among a cell's outputs (display_data and execute_result with HTML)."""
    return [o["output_type"] for o in cell.outputs if "text/html" in o.get("data", {})]


@pytest.mark.parametrize("name", ["ends_in_show", "show_with_kind", "show_mid_cell"])
def test_one_show_one_output(executed, name):
    cell = executed[name]
    assert _views(cell) == ["display_data"], cell.outputs
    assert len(cell.outputs) == 1, cell.outputs
    assert "<iframe srcdoc=" in cell.outputs[0]["data"]["text/html"]


def test_two_shows_two_outputs(executed):
    assert _views(executed["two_shows"]) == ["display_data", "display_data"]


def test_a_view_at_the_end_of_a_cell_renders_once(executed):
    assert _views(executed["ends_in_view"]) == ["execute_result"]


def test_show_returns_none(executed):
    cell = executed["show_value"]
    assert _views(cell) == ["display_data"]
    assert [o["text"] for o in cell.outputs if o["output_type"] == "stream"] == ["None\n"]


def test_show_in_a_script_writes_and_opens_nothing(tmp_path, monkeypatch):
    import torch

    import attnscope as ats

    monkeypatch.chdir(tmp_path)
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda *a, **k: opened.append(a))
    res = ats.AttentionResult(weights=torch.rand(1, 1, 1, 2, 2).softmax(-1), layers=[0], tokens=[["a", "b"]])
    with pytest.warns(UserWarning, match=r"show\(\) displays views in a notebook .* res.save_html\(path\)"):
        assert res.show() is None
    assert list(tmp_path.iterdir()) == [] and opened == []
