"""Every attnscope.load failure names the file and what is wrong (issue #22); a loaded result is checked against its
class (types, dtypes, shapes) before it is returned; saves are atomic and their two files belong together."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import attnscope as ats


def attention(tmp_path):
    res = ats.AttentionResult(weights=torch.rand(2, 1, 3, 4, 4), layers=[0, 1], input_ids=torch.arange(4)[None],
                              attention_mask=torch.ones(1, 4, dtype=torch.long), tokens=[["a", "b", "c", "d"]])
    return res.save(tmp_path / "res")


def attribution(tmp_path):
    res = ats.AttributionResult(scores=torch.rand(2, 5), raw=torch.rand(2, 5, 8), tokens=[["x"] * 5] * 2,
                                input_ids=torch.zeros(2, 5, dtype=torch.long),
                                attention_mask=torch.ones(2, 5, dtype=torch.long), method="saliency", target="next")
    return res.save(tmp_path / "attr")


def edit_json(folder, change):
    meta = json.loads((folder / "result.json").read_text())
    change(meta)
    (folder / "result.json").write_text(json.dumps(meta))


def edit_tensors(folder, change):
    tensors = load_file(str(folder / "tensors.safetensors"))
    change(tensors)
    from safetensors import safe_open

    with safe_open(str(folder / "tensors.safetensors"), framework="pt") as f:
        metadata = f.metadata()
    save_file(tensors, str(folder / "tensors.safetensors"), metadata=metadata)


def test_round_trip_still_exact(tmp_path):
    folder = attention(tmp_path)
    back = ats.load(folder)
    assert torch.equal(back.weights, load_file(str(folder / "tensors.safetensors"))["weights"])
    assert back.layers == [0, 1] and back.tokens == [["a", "b", "c", "d"]]


def test_truncated_json(tmp_path):
    folder = attention(tmp_path)
    text = (folder / "result.json").read_text()
    (folder / "result.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"res/result\.json is not valid JSON \(truncated or edited\?\)"):
        ats.load(folder)


def test_json_of_another_shape(tmp_path):
    folder = attention(tmp_path)
    (folder / "result.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"result\.json holds a JSON list, not an attnscope result"):
        ats.load(folder)
    (folder / "result.json").write_text(json.dumps({"format": "attnscope-result/1"}))
    with pytest.raises(ValueError, match=r"result\.json has no 'result' object"):
        ats.load(folder)


def test_missing_tensors_file(tmp_path):
    folder = attention(tmp_path)
    (folder / "tensors.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"res/tensors\.safetensors is missing: .*result\.json refers to"):
        ats.load(folder)


def test_truncated_tensors_file(tmp_path):
    folder = attention(tmp_path)
    data = (folder / "tensors.safetensors").read_bytes()
    (folder / "tensors.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"tensors\.safetensors cannot be read as safetensors \(truncated"):
        ats.load(folder)


def test_dangling_tensor_reference(tmp_path):
    folder = attention(tmp_path)
    edit_json(folder, lambda m: m["result"]["fields"]["weights"].update({"__tensor__": "gone"}))
    with pytest.raises(ValueError, match=r"result\.json: weights refers to tensor 'gone', which .*tensors\.safetensors"
                                         r" does not hold"):
        ats.load(folder)


def test_tensor_of_another_shape_than_recorded(tmp_path):
    folder = attention(tmp_path)
    edit_tensors(folder, lambda t: t.update(weights=torch.rand(2, 1, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"weights is tensor 'weights' of shape \[2, 1, 3, 4, 4\] in the JSON, but "
                                         r".*holds shape \[2, 1, 3, 4, 5\]"):
        ats.load(folder)


def test_tensor_of_another_dtype_than_recorded(tmp_path):
    folder = attention(tmp_path)
    edit_tensors(folder, lambda t: t.update(weights=t["weights"].double()))
    with pytest.raises(ValueError, match=r"of dtype float32 in the JSON, but .* holds torch\.float64"):
        ats.load(folder)


def test_shapes_that_disagree_between_fields(tmp_path):
    folder = attribution(tmp_path)

    def shorter(meta):
        meta["result"]["fields"]["scores"].update(shape=[2, 4])

    edit_tensors(folder, lambda t: t.update(scores=torch.rand(2, 4)))
    edit_json(folder, shorter)
    with pytest.raises(ValueError, match=r"attr/result\.json: the result: field 'raw' \(a torch\.float32 tensor "
                                         r"of shape \(2, 5, 8\)\) does not fit \[float batch seq hidden\]: axis seq "
                                         r"is 5, but another field has seq = 4"):
        ats.load(folder)


def test_wrong_dtype_for_the_field(tmp_path):
    folder = attribution(tmp_path)
    edit_tensors(folder, lambda t: t.update(input_ids=t["input_ids"].float()))
    edit_json(folder, lambda m: m["result"]["fields"]["input_ids"].update(dtype="float32"))
    with pytest.raises(ValueError, match=r"field 'input_ids' .* does not fit \[int batch seq\]: dtype torch\.float32 "
                                         r"is not int"):
        ats.load(folder)


def test_wrong_type_for_a_field(tmp_path):
    folder = attention(tmp_path)
    edit_json(folder, lambda m: m["result"]["fields"].update(layers="0, 1"))
    with pytest.raises(ValueError, match=r"result\.json: the result: field 'layers' should be list\[int\], got str"):
        ats.load(folder)


def test_unknown_and_missing_fields(tmp_path):
    folder = attention(tmp_path)
    edit_json(folder, lambda m: m["result"]["fields"].update(colour="red"))
    with pytest.raises(ValueError, match=r"is a AttentionResult with unknown fields \['colour'\]"):
        ats.load(folder)
    folder = attention(tmp_path / "b")
    edit_json(folder, lambda m: m["result"]["fields"].pop("layers"))
    with pytest.raises(ValueError, match=r"missing fields \['layers'\]"):
        ats.load(folder)


def test_unknown_result_type_names_the_file(tmp_path):
    folder = attention(tmp_path)
    edit_json(folder, lambda m: m["result"].update({"__result__": "Bogus"}))
    with pytest.raises(ValueError, match=r"res/result\.json: the result has unknown result type 'Bogus'"):
        ats.load(folder)


def test_files_of_two_saves_are_not_mixed(tmp_path):
    folder = attention(tmp_path)
    first = (folder / "tensors.safetensors").read_bytes()
    attention(tmp_path)  # save again into the same folder: a new save id
    (folder / "tensors.safetensors").write_bytes(first)  # as if the overwrite stopped after the tensors file
    with pytest.raises(ValueError, match=r"tensors\.safetensors and .*result\.json come from different saves"):
        ats.load(folder)
