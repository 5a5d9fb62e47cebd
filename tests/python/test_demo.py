import os
import subprocess
import sys


def test_demo_reports_every_layer_within_tolerance(minilm_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "attnscope.demo"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    layers = [line for line in out.stdout.splitlines() if line.startswith("layer ")]
    assert len(layers) == 6
    assert all(float(line.split("=")[1].strip(" )")) <= 1e-5 for line in layers)
    assert sum(line.strip().startswith("head") for line in out.stdout.splitlines()) == 6 * 12
    assert "[CLS]" in out.stdout and "all layers within 1e-5 of eager" in out.stdout
