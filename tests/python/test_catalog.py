"""The method catalog: importable without torch, the only list of method names, and what every entry promises."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import attnscope as ats
from attnscope.attribution import catalog
from attnscope.attribution.base import AttributionMethod

PACKAGE = Path(ats.__file__).parent


def test_catalog_and_list_methods_import_without_torch():
    code = ("import sys, attnscope; t = attnscope.list_methods(); "
            "assert 'integrated_gradients' in t and len(t) >= 11, t; "
            "assert 'torch' not in sys.modules, 'torch was imported'; print(t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "kernel_shap" in out.stdout and "perturbation" in out.stdout


def test_list_methods_is_a_table():
    table = ats.list_methods()
    frame = table.to_pandas()
    assert list(frame.columns) == list(table.columns)
    assert set(frame["method"]) == {s.name for s in catalog.CATALOG}
    assert set(frame["family"]) == set(catalog.FAMILIES)
    ig = table["integrated_gradients"]
    assert ig.family == "gradient" and ig.signed and ig.uses_baselines and ig.generation
    assert ig.option("n_steps").default == 32 and ig.option("integration").default == "gausslegendre"
    assert "<table" in table._repr_html_() and "kernel_shap" in repr(table)
    assert {s.name for s in ats.list_methods("perturbation")} == {"occlusion", "lime", "kernel_shap",
                                                                 "shapley_sampling"}
    with pytest.raises(ValueError, match="unknown family 'nope'; use one of gradient, perturbation, attention"):
        ats.list_methods("nope")


@pytest.mark.parametrize("spec", catalog.CATALOG, ids=lambda s: s.name)
def test_every_entry_has_a_class_with_its_options(spec):
    cls = spec.load()
    assert issubclass(cls, AttributionMethod) and cls.name == spec.name and cls.spec is spec
    fields = {f.name: f.default for f in dataclasses.fields(cls.Options)}
    assert fields == {o.name: o.default for o in spec.options}
    if spec.attribute:
        assert repr(cls()).startswith(cls.__name__ + "(")
    if spec.generation:
        assert cls.explain_generation.__func__ is not AttributionMethod.explain_generation.__func__


def test_options_are_checked_where_the_class_is_built():
    from attnscope.attribution import IntegratedGradients, Occlusion

    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0"):
        IntegratedGradients(n_steps=0)
    with pytest.raises(ValueError, match="unknown integration 'simpson'"):
        IntegratedGradients(integration="simpson")
    with pytest.raises(ValueError, match="stride=3 is larger than window=2"):
        Occlusion(window=2, stride=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'steps'"):
        IntegratedGradients(steps=4)
    assert IntegratedGradients(n_steps=8).options.n_steps == 8


def test_a_method_object_runs_with_its_options():
    from attribution_models import tiny_gpt2, word_tokenizer

    from attnscope.attribution import IntegratedGradients

    tok = word_tokenizer(bert_style=False)
    enc = tok(["the cat sat on the mat"], return_tensors="pt")
    model = tiny_gpt2()
    by_object = ats.attribute(model, enc, method=IntegratedGradients(n_steps=6), tokenizer=tok)
    by_name = ats.attribute(model, enc, method="integrated_gradients", n_steps=6, tokenizer=tok)
    assert by_object.method == "integrated_gradients"
    assert (by_object.scores == by_name.scores).all()
    with pytest.raises(ValueError, match="carries its options"):
        ats.attribute(model, enc, method=IntegratedGradients(n_steps=6), n_steps=8)


def test_unknown_methods_name_the_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'magic'; use one of saliency, input_x_gradient"):
        catalog.get("magic")
    with pytest.raises(ValueError, match="unknown method 'lime' for generation; use one of saliency"):
        catalog.get("lime", "generation")
    with pytest.raises(ValueError, match="unknown method 'attention'; use one of"):
        catalog.get("attention")  # generation only


def test_quadrature_rules_match_the_ops():
    from attnscope import ops

    assert catalog.QUADRATURE_RULES == ops.QUADRATURE_RULES


def _string_tuples(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            yield node.lineno, values


def test_no_other_list_of_method_names_in_the_package():
    names = {s.name for s in catalog.CATALOG}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "catalog.py":
            continue
        for line, values in _string_tuples(ast.parse(path.read_text(encoding="utf-8"))):
            if len(names.intersection(values)) >= 2:
                found.append(f"{path.relative_to(PACKAGE)}:{line}: {values}")
    assert not found, "method names listed outside the catalog:\n" + "\n".join(found)
