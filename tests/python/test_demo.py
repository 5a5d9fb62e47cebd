import os
import subprocess
import sys


def test_demo_reports_every_layer_within_tolerance(minilm_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "attnscope.demo"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(6))
    assert all(float(r[1]) <= 1e-5 for r in rows)
    assert "all layers within 1e-5" in out.stdout
