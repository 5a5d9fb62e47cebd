"""The shipped induction organism: its folder, its accuracy, and the heads head_stats finds in it."""

from __future__ import annotations

import json

import pytest
import torch

import attnscope.organisms as organisms
from attnscope.analysis import head_stats, repeated_sequences

S = 16  # held-out segment length (training drew lengths 4..24)
V = 128  # segment tokens t0..t127


@pytest.fixture(scope="module")
def organism():
    return organisms.load("induction")


@pytest.fixture(scope="module")
def held_out(organism):
    _, tok = organism
    return repeated_sequences(tok, n=256, segment_len=S, seed=2024)  # training used other seeds


def test_folder_ships_safetensors_tokenizer_and_card():
    folder = organisms.path("induction")
    weights = folder / "model.safetensors"
    assert weights.is_file() and weights.stat().st_size <= 5 * 2**20
    assert (folder / "tokenizer.json").is_file()
    card = (folder / "README.md").read_text()
    assert "induction" in card and "previous-token" in card
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "auto_map" not in cfg  # a standard architecture, no remote code
    with pytest.raises(ValueError, match="unknown organism 'bigram'"):
        organisms.path("bigram")


def test_tokenizer(organism):
    _, tok = organism
    assert tok("t0 t5 t127")["input_ids"] == [1, 3, 8, 130]
    assert tok.convert_ids_to_tokens([1, 3]) == ["<bos>", "t0"]
    assert tok.pad_token_id == 0 and tok.bos_token_id == 1 and len(tok) == V + 3


def test_accuracy_by_induction_only(organism, held_out):
    model, _ = organism
    with torch.no_grad():
        pred = model(input_ids=held_out).logits.argmax(-1)  # pred[:, t] predicts held_out[:, t + 1]
    second = (pred[:, S + 1:2 * S] == held_out[:, S + 2:]).float().mean().item()  # copy-2 tokens 2..S
    first = (pred[:, :S] == held_out[:, 1:S + 1]).float().mean().item()  # copy-1 tokens 1..S
    assert second >= 0.95, second
    assert first <= 2 / V, first


def test_head_stats_finds_previous_token_then_induction_head(organism, held_out):
    model, tok = organism
    hs = head_stats(model, tok, held_out, segment_len=S, progress=False)
    (ind_layer, _, ind), = hs.top("induction", 1)
    assert ind >= 0.5
    earlier = hs["prev_token"][:ind_layer]
    assert ind_layer >= 1 and float(earlier.max()) >= 0.5

    torch.manual_seed(0)
    random_copy = type(model)(model.config).eval()
    rnd = head_stats(random_copy, tok, held_out, segment_len=S, progress=False)
    assert float(rnd["induction"].max()) < 0.2
    assert float(rnd["prev_token"].max()) < 0.2
