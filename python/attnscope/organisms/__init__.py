"""Model organisms: tiny trained models whose mechanism is known, shipped as save_pretrained folders.

``induction``: a 2-layer Llama-architecture causal LM trained on ``[<bos>, segment, segment]`` sequences of random
tokens; it predicts the second copy by induction (a previous-token head in layer 0 and an induction head in layer 1).
See the folder's README.md (model card) and ``python -m attnscope.organisms.train induction``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
NAMES = ("induction",)

__all__ = ["NAMES", "load", "path"]


def path(name: str) -> Path:
    """The save_pretrained folder of organism ``name``."""
    if name not in NAMES:
        raise ValueError(f"unknown organism {name!r}: available organisms are {list(NAMES)}")
    folder = _HERE / name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"the {name!r} organism's folder {folder} has no config.json; "
                                f"retrain it with: python -m attnscope.organisms.train {name}")
    return folder


def load(name: str = "induction", **from_pretrained_kwargs: Any):
    """``(model, tokenizer)`` of organism ``name``, the model in eval mode on the CPU.

    Keyword arguments go to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``attn_implementation="eager"``).
    """
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    folder = path(name)
    model = AutoModelForCausalLM.from_pretrained(folder, **from_pretrained_kwargs).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    return model, tokenizer
