"""`make demo`: capture on MiniLM within 1e-5 of eager, per-head top tokens, and a report a browser can open."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, minilm_path):
    report_dir = tmp_path_factory.mktemp("demo") / "report"
    env = dict(os.environ, HF_HUB_OFFLINE="1", ATTNSCOPE_REPORT_DIR=str(report_dir))
    out = subprocess.run([sys.executable, "-m", "attnscope.demo"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout, report_dir / "index.html"


def test_demo_reports_every_layer_within_tolerance(demo_run):
    stdout, _ = demo_run
    layers = [line for line in stdout.splitlines() if line.startswith("layer ")]
    assert len(layers) == 6
    assert all(float(line.split("=")[1].strip(" )")) <= 1e-5 for line in layers)
    assert sum(line.strip().startswith("head") for line in stdout.splitlines()) == 6 * 12
    assert "[CLS]" in stdout and "all layers within 1e-5 of eager" in stdout
    assert "integrated gradients of the similarity" in stdout


def test_demo_report_has_the_views(demo_run, browser):
    stdout, index = demo_run
    assert f"report: {index}" in stdout
    browser.get(index.as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    views = browser.find_elements("css selector", ".attnscope-view")
    kinds = [e.get_attribute("data-view") for e in views]
    assert "head" in kinds and "model" in kinds and "tokens" in kinds
    assert all(e.get_attribute("data-rendered") == "1" for e in views)
