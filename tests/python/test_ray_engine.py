"""attribute_dataset(engine="ray"): a local Ray cluster started here (127.0.0.1, 2 CPUs); the same rows as the local
engine; a SIGKILLed worker loses and duplicates nothing; a missing Ray and a closed port fail clearly."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

import attnscope as ats

from attribution_models import tiny_bert, word_tokenizer
from corpus_models import block_imports, random_texts

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def cluster():
    """One cluster for the module, on this machine only."""
    from attnscope.attribution.ray_engine import start_local_cluster

    start_local_cluster(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    tiny_bert().save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def texts():
    return random_texts(96, seed=5)


@pytest.fixture(scope="module")
def local_run(model_dir, texts):
    return ats.attribute_dataset(str(model_dir), None, texts, labels=[i % 3 for i in range(96)], method="saliency",
                                 batch_size=8, progress=False)


def test_cluster_stays_on_this_machine(cluster):
    nodes = cluster.nodes()
    assert nodes and all(n["NodeManagerAddress"] == "127.0.0.1" for n in nodes)
    assert cluster.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def test_same_rows_as_the_local_engine(cluster, model_dir, texts, local_run, tmp_path):
    res = ats.attribute_dataset(str(model_dir), None, texts, labels=[i % 3 for i in range(96)], method="saliency",
                                batch_size=8, progress=False, engine="ray", num_workers=2, out=tmp_path)
    assert len(res.examples) == 96
    assert res.examples == local_run.examples  # row for row, every field, exactly
    assert len(list((tmp_path / "shards").glob("shard-*.parquet"))) == 3  # 96 texts in shards of 4 batches of 8


def test_resume_skips_finished_shards(cluster, model_dir, texts, tmp_path):
    kw = dict(labels=[i % 3 for i in range(48)], method="saliency", batch_size=4, progress=False, engine="ray",
              num_workers=1, out=tmp_path)
    ats.attribute_dataset(str(model_dir), None, texts[:48], **kw)
    shards = sorted((tmp_path / "shards").glob("shard-*.parquet"))
    kept = {p: p.stat().st_mtime_ns for p in shards[:2]}
    assert len(shards) == 3  # 48 texts in shards of 4 batches of 4
    shards[2].unlink()
    res = ats.attribute_dataset(str(model_dir), None, texts[:48], **kw)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished shards were not recomputed
    local = ats.attribute_dataset(str(model_dir), None, texts[:48], labels=kw["labels"], method="saliency",
                                  batch_size=4, progress=False)
    assert res.examples == local.examples


def _kill_first_worker(shard_dir, killed):
    """Wait for a worker to announce itself and finish one shard, then SIGKILL it."""
    deadline = time.time() + 120
    while time.time() < deadline:
        pids = list(shard_dir.glob("worker-*.pid")) if shard_dir.exists() else []
        if pids and list(shard_dir.glob("shard-*.parquet")):
            pid = int(pids[0].read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def test_a_killed_worker_loses_and_duplicates_nothing(cluster, model_dir, texts, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_first_worker, args=(tmp_path / "shards", killed))
    watcher.start()
    # batches of 2 (shards of 8 texts): a worker dies with most of the work still to do
    texts = texts[:48]
    kw = dict(labels=[i % 3 for i in range(48)], method="saliency", batch_size=2, progress=False)
    ray_kw = dict(kw, engine="ray", num_workers=2, out=tmp_path)
    try:
        res = ats.attribute_dataset(str(model_dir), None, texts, **ray_kw)
    except Exception:  # Ray gave up on the task: a resume finishes the job
        res = ats.attribute_dataset(str(model_dir), None, texts, **ray_kw)
    watcher.join()
    assert killed, "no worker was killed"
    assert len(list((tmp_path / "shards").glob("worker-*.pid"))) >= 3  # a new worker took the dead one's place
    assert [ex["index"] for ex in res.examples] == list(range(48))
    shard_rows = [len(pq.read_table(p)) for p in sorted((tmp_path / "shards").glob("shard-*.parquet"))]
    assert shard_rows == [8] * 6  # every text once: nothing lost, nothing twice
    assert res.examples == ats.attribute_dataset(str(model_dir), None, texts, **kw).examples


def test_closed_port_fails_fast_and_clearly(model_dir, texts):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    start = time.time()
    with pytest.raises(ConnectionError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        ats.attribute_dataset(str(model_dir), None, texts[:4], engine="ray", ray_address=f"127.0.0.1:{port}",
                              progress=False)
    assert time.time() - start < 6.0  # CONNECT_TIMEOUT_S = 5 at most


def test_bad_ray_arguments(model_dir, texts):
    with pytest.raises(ValueError, match="num_workers must be a positive int"):
        ats.attribute_dataset(str(model_dir), None, texts[:4], engine="ray", num_workers=0, progress=False)
    with pytest.raises(ValueError, match="resources: unknown keys \\['gpus'\\]"):
        ats.attribute_dataset(str(model_dir), None, texts[:4], engine="ray", resources={"gpus": 1}, progress=False)
    with pytest.raises(ValueError, match="engine='spark'"):
        ats.attribute_dataset(str(model_dir), None, texts[:4], engine="spark", progress=False)
    with pytest.raises(ValueError, match="ray_address='nowhere'"):
        ats.attribute_dataset(str(model_dir), None, texts[:4], engine="ray", ray_address="nowhere", progress=False)


def test_missing_ray_is_a_clear_error(model_dir, texts, monkeypatch):
    block_imports(monkeypatch, "ray")
    with pytest.raises(ImportError, match=r"pip install 'attnscope\[ray\]'"):
        ats.attribute_dataset(str(model_dir), None, texts[:4], engine="ray", progress=False)
    # the local engine needs no Ray
    assert len(ats.attribute_dataset(str(model_dir), None, texts[:4], progress=False).examples) == 4
