"""``attribute_dataset(..., engine="ray")``: the same rows as the local engine, computed on a Ray cluster.

The corpus is cut into shards of whole batches (``batch_size * batches_per_shard`` texts, starting at multiples of
``batch_size``, so every batch is the local engine's batch); Ray Data maps the shards over a fixed pool of actors
(``ActorPoolStrategy(size=num_workers)``), each of which loads the model once from its save_pretrained folder on its
own device and writes each finished shard as ``out/shards/shard-NNNNNN.parquet`` (written aside, then renamed: a
shard file is whole or absent). A shard whose file exists is skipped, so a run killed anywhere resumes where it
stopped, and a task retried after a worker dies rewrites its shard instead of adding rows.

A local cluster (``ray_address=None`` and no Ray running) is started on 127.0.0.1 without the dashboard and shut
down after the run; a given address is probed first, so a closed port fails in ``CONNECT_TIMEOUT_S`` seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from ..atomic_files import write_text

CONNECT_TIMEOUT_S = 5.0
SHARDS = "shards"
DEFAULT_RESOURCES = {"num_cpus": 0.5}  # fractional: on 2 cores, 1 CPU per actor leaves none for Ray's read task


def require_ray():
    """The ``ray`` module with Ray Data, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError("engine='ray' needs Ray Data: pip install 'attnscope[ray]' (ray[data]==2.60.0); the "
                          "default engine='local' needs nothing more") from None
    return ray


def local_cluster_options(num_cpus: int | None = None) -> dict:
    """``ray.init`` options for a cluster on this machine only: no dashboard, a small object store, quiet."""
    return {"num_cpus": num_cpus, "include_dashboard": False, "_node_ip_address": "127.0.0.1",
            "object_store_memory": 256 * 1024 * 1024, "log_to_driver": False, "configure_logging": False}


@contextlib.contextmanager
def _loopback_only():
    """Ray turns 127.0.0.1 into the machine's routable address unless it runs single-node (its switch for
    Windows and macOS); held only while the node starts, so the node, GCS and workers register on 127.0.0.1."""
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def start_local_cluster(num_cpus: int | None = None) -> None:
    """Start Ray on 127.0.0.1 only (no dashboard): what engine="ray" does without an address, and what tests,
    the notebook and the benchmark call to hold one cluster for several runs."""
    ray = require_ray()
    with _loopback_only():
        ray.init(**local_cluster_options(num_cpus))


def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse an address nobody listens on, within ``timeout`` seconds (ray.init would retry for much longer)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"ray_address={address!r}: use 'HOST:PORT' (e.g. '127.0.0.1:6379'), 'ray://HOST:PORT' or "
                         "'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"no Ray cluster answers at {address} ({exc.__class__.__name__}: {exc}; gave up after "
                              f"at most {timeout:g} s): start one (`ray start --head --node-ip-address 127.0.0.1`) "
                              "or pass ray_address=None for a local one") from None


def _connect(ray, address: str | None) -> bool:
    """Join ``address`` or the running cluster, or start a local one; True when this call started it."""
    if ray.is_initialized():
        return False
    if address is not None:
        probe(address)
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        return False
    start_local_cluster(max(2, os.cpu_count() or 2))
    return True


def _model_folder(model: Any, tokenizer: Any, out_dir: Path) -> Path:
    """The save_pretrained folder the workers load: the one given, or the model object saved under out/model."""
    if isinstance(model, (str, Path)):
        return Path(model).resolve()
    folder = out_dir / "model"
    if not (folder / "config.json").is_file():
        if not hasattr(model, "save_pretrained"):
            raise ValueError("engine='ray' loads the model in each worker from a save_pretrained folder: pass "
                             f"model='path/to/folder' (a {type(model).__name__} has no save_pretrained)")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder.resolve()


def shard_plan(n_texts: int, batch_size: int, batches_per_shard: int) -> list[tuple[int, int, int]]:
    """(shard, start, stop) covering range(n_texts); every start is a multiple of batch_size."""
    size = batch_size * batches_per_shard
    return [(k, start, min(n_texts, start + size)) for k, start in enumerate(range(0, n_texts, size))]


def shard_path(shard_dir: Path, shard: int) -> Path:
    return shard_dir / f"shard-{shard:06d}.parquet"


def _check_meta(out_dir: Path, meta: dict) -> None:
    """A folder holds the shards of one run's settings; resuming with others would mix two runs."""
    path = out_dir / "meta.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if {k: saved.get(k) for k in meta} != meta:
            raise ValueError(f"{out_dir} holds a run with other settings ({saved}); use another out= folder to start "
                             "afresh")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(meta) + "\n")


class ShardWorker:
    """One Ray actor: loads the model once, then attributes whole shards and writes each as a Parquet file."""

    def __init__(self, model_dir: str, shard_dir: str, batch_size: int, options: dict, use_gpu: bool,
                 threads: int) -> None:
        import torch

        from ..commands import load_model_dir

        torch.set_num_threads(threads)
        self.model, self.tokenizer = load_model_dir(Path(model_dir))
        if use_gpu and torch.cuda.is_available():
            self.model.to("cuda")
        self.shard_dir, self.batch_size, self.options = Path(shard_dir), batch_size, options
        (self.shard_dir / f"worker-{os.getpid()}.pid").write_text(str(os.getpid()))  # who to blame (and tests)

    def _write(self, shard: int, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        final = shard_path(self.shard_dir, shard)
        fd, tmp = tempfile.mkstemp(dir=self.shard_dir, suffix=".part")
        os.close(fd)
        pq.write_table(pa.Table.from_pylist(rows), tmp)
        os.replace(tmp, final)  # whole or absent, even when this process is killed half-way

    def __call__(self, batch: dict) -> dict:
        from .dataset_rows import batch_rows

        counts = []
        for shard, start, texts, labels in zip(batch["shard"].tolist(), batch["start"].tolist(), batch["texts"],
                                               batch["labels"]):
            # the shard's texts by corpus index, so rows carry the same indices as the local engine's
            by_index = {start + j: str(t) for j, t in enumerate(texts)}
            gold = {start + j: v for j, v in enumerate(json.loads(labels))}
            stop = start + len(texts)
            rows = []
            for s in range(start, stop, self.batch_size):
                rows += batch_rows(self.model, self.tokenizer, by_index, gold if any(v is not None for v in
                                   gold.values()) else None, list(range(s, min(stop, s + self.batch_size))),
                                   **self.options)
            self._write(shard, rows)
            counts.append(len(rows))
        return {"shard": batch["shard"], "rows": counts}


def _read_shards(shard_dir: Path, plan: list[tuple[int, int, int]]) -> dict[int, dict]:
    import pyarrow.parquet as pq

    done: dict[int, dict] = {}
    for shard, start, stop in plan:
        rows = pq.read_table(shard_path(shard_dir, shard)).to_pylist()
        if [r["index"] for r in rows] != list(range(start, stop)):
            raise RuntimeError(f"{shard_path(shard_dir, shard)} holds rows {[r['index'] for r in rows][:5]}..., not "
                               f"{start}..{stop - 1}: delete it and run again")
        done.update((r["index"], r) for r in rows)
    return done


def run_ray(model: Any, tokenizer: Any, corpus: Any, *, method: str, target: Any, batch_size: int,
            out_dir: Path | None, max_length: int | None, progress: bool, meta: dict, attribute_kwargs: dict,
            address: str | None, num_workers: int, resources: dict | None,
            batches_per_shard: int = 4) -> dict[int, dict]:
    """Attribute ``corpus`` on Ray; rows by index, identical to the local engine's."""
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
    resources = {**DEFAULT_RESOURCES, **(resources or {})}
    unknown = set(resources) - {"num_cpus", "num_gpus", "memory"}
    if unknown:
        raise ValueError(f"resources: unknown keys {sorted(unknown)}; use num_cpus, num_gpus, memory (per worker)")
    if address is not None:
        probe(address)
    ray = require_ray()
    if out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="attnscope-ray-"))
    _check_meta(out_dir, {**meta, "engine": "ray", "batch_size": batch_size, "batches_per_shard": batches_per_shard})
    shard_dir = out_dir / SHARDS
    shard_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*shard_dir.glob("*.part"), *shard_dir.glob("worker-*.pid")]:  # a killed run's leftovers
        stale.unlink()
    plan = shard_plan(len(corpus.texts), batch_size, batches_per_shard)
    todo = [p for p in plan if not shard_path(shard_dir, p[0]).exists()]
    folder = _model_folder(model, tokenizer, out_dir)
    started = _connect(ray, address)
    try:
        if todo:
            _map_shards(ray, todo, corpus, folder, shard_dir, batch_size, num_workers, resources, progress, len(plan),
                        dict(method=method, target=target, max_length=max_length, attribute_kwargs=attribute_kwargs))
    finally:
        if started:
            ray.shutdown()
    return _read_shards(shard_dir, plan)


def _map_shards(ray, todo, corpus, folder, shard_dir, batch_size, num_workers, resources, progress, n_shards,
                options) -> None:
    from ray.data import ActorPoolStrategy
    from tqdm.auto import tqdm

    # each row carries its shard's texts and labels (labels as JSON: a column of mixed ints, names and None)
    labels = corpus.labels or [None] * len(corpus.texts)
    items = [{"shard": k, "start": s, "texts": corpus.texts[s:e], "labels": json.dumps(labels[s:e])}
             for k, s, e in todo]
    constructor = dict(model_dir=str(folder), shard_dir=str(shard_dir), batch_size=batch_size, options=options,
                       use_gpu=bool(resources.get("num_gpus")), threads=max(1, int(resources["num_cpus"])))
    # Ray Data restarts a dead actor and retries its task by default (max_restarts=-1, max_task_retries=-1)
    mapped = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardWorker, batch_size=1, compute=ActorPoolStrategy(size=num_workers), fn_constructor_kwargs=constructor,
        **resources)
    with tqdm(total=n_shards, initial=n_shards - len(todo), desc="attnscope ray shards", unit="shard",
              disable=not progress) as bar:
        for batch in mapped.iter_batches(batch_size=1, batch_format="numpy"):
            bar.update(len(batch["shard"]))
