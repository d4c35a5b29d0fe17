"""The distributed ingest: chunking and embedding scheduled over a Ray cluster with Ray Data.

This process stays the driver and the one writer: it reads and parses the inputs, checks each
batch's content hashes against the store, and ships only papers to embed to a queue; a Ray Data
pipeline reads that queue on this node and hands each batch to an actor pool of embedding workers
(each loads the model once); the embedded batches come back in the order they were shipped and are
written here with the same steps as a single-process ingest (`ingest.store_nodes`). Killing this
process stops the writer at once (the job's workers go with it); a worker lost with its node is not
restarted: its batch stops the run with one line, what was written is kept, and the same command
again resumes.
"""

from __future__ import annotations

import logging
import pickle
import socket
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding

from assistant.config import Settings
from assistant.errors import AssistantError, ConfigError
from assistant.ingest import Done, Ingester, IngestReport, check, embedded_nodes, store_nodes
from assistant.ingest.chunking import Chunker
from assistant.schema import Paper
from assistant.store import Store

# The queue's end: the pipeline's source stops reading when it sees it.
_END = None


def embedding_model(settings: Settings) -> BaseEmbedding:
    """Build the embedding model a worker runs, from the settings (the one place that decides it)."""
    from assistant.embeddings import resolve

    return resolve(settings).build()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray: install the extra with `pip install 'arxiv-assistant[ray]'`"
        ) from None
    return ray


def quiet() -> None:
    """Keep Ray's and Ray Data's notices (INFO lines, tips, warnings) off stderr: they would bury the
    progress bar and the bad-record reports; failures still surface as errors."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.")
    # `max_restarts` goes through map_batches' **ray_remote_args (deprecated, removed in Ray 2.64:
    # the extra pins ray below it).
    warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
    logging.getLogger("ray").setLevel(logging.ERROR)
    # Ray Data logs a failed task's traceback at ERROR before raising it; the ingest words it as one line.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)


def check_address(address: str) -> None:
    """Refuse an address nothing answers at, at once (Ray itself would keep trying for minutes)."""
    if address in ("", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"--ray {address}: give auto, HOST:PORT or ray://HOST:PORT, or no address for a local Ray"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(
            f"--ray {address}: nothing answers at {host}:{port} ({exc.strerror or exc}); start the "
            f"cluster's head there with `ray start --head --port {port}`, or give --ray alone for a local Ray"
        ) from None


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` (`auto`, `HOST:PORT`, `ray://HOST:PORT`), or start a local one ("").

    Return whether this call started Ray here (then it must shut it down).
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    check_address(address)
    quiet()
    # A local instance needs no dashboard; a cluster's own settings are not ours to pass.
    own = {} if address else {"include_dashboard": False}
    try:
        # "local": a new instance even when a cluster already runs on this machine.
        ray.init(address=address or "local", log_to_driver=False, logging_level=logging.ERROR, **own)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"--ray {address}: cannot join that Ray cluster ({reason}); start one with `ray start --head`, "
            "or give --ray without an address to run a local one"
        ) from None
    return True


def worker_settings(settings: Settings) -> Settings:
    """The settings a worker gets: the driver's, its onnxruntime held to the CPUs Ray gives it (not
    every core of its node) unless `embedding.threads` says otherwise."""
    shipped = settings.model_copy(deep=True)
    shipped.embedding.threads = settings.embedding.threads or settings.ray.cpus_per_worker
    return shipped


class Embedder:
    """A Ray Data worker (one actor): chunks and embeds the batches it is given, model loaded once."""

    def __init__(self, settings_json: str) -> None:
        settings = Settings.model_validate_json(settings_json)
        self.chunker = Chunker(settings.chunking)
        self.model = embedding_model(settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"seq": [], "nodes": []}
        for seq, blob in zip(batch["seq"], batch["papers"], strict=True):
            papers: list[Paper] = pickle.loads(blob)
            out["seq"].append(int(seq))
            out["nodes"].append(pickle.dumps(embedded_nodes(self.chunker, self.model, papers)))
        return out


def _feed(queue: Any) -> Any:
    """Return a Ray Data source that yields the batches put on `queue`, on this node, until `_END`."""
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class Feed(Datasource):
        # Read where the driver runs: the queue and the batches it holds are here.
        supports_distributed_reads = False

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, *args: Any, **kwargs: Any) -> list[ReadTask]:
            def read() -> Iterator[Any]:
                while (item := queue.get()) is not _END:
                    seq, blob = item
                    yield pa.table({"seq": [seq], "papers": pa.array([blob], pa.binary())})

            return [ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None))]

    return Feed()


class RayIngester(Ingester):
    """An `Ingester` whose chunking and embedding run on a Ray cluster; it writes here, in order.

    Use it as a context manager: entering joins (or starts) Ray, leaving stops the workers.
    """

    def __init__(self, store: Store, settings: Settings, address: str = "") -> None:
        super().__init__(store, None, settings.chunking)  # type: ignore[arg-type]  # embedding runs remotely
        self.settings = settings
        self.address = address
        self._started = False
        self._queue: Any = None
        self._results: Iterator[dict[str, Any]] | None = None
        self._in_flight: deque[tuple[int, list[Paper]]] = deque()
        self._seq = 0
        self.workers = 0
        self.shipped = 0  # papers sent to be embedded (tests: unchanged ones never are)

    def __enter__(self) -> RayIngester:
        ray = _ray()
        self._started = connect(self.address)
        from ray.data import DataContext
        from ray.util.queue import Queue

        quiet()  # again: Ray Data sets up its own loggers when it is imported
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.execution_options.preserve_order = True  # a later record of a paper must land last
        # Ray Data gathers a source's rows into blocks of this many bytes before passing them on:
        # one byte makes every batch a block of its own, sent on at once (else the source would
        # hold batches back until the queue ends).
        context.target_max_block_size = 1
        per_worker = self.settings.ray.cpus_per_worker
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = self.settings.ray.workers or max(1, cpus // per_worker)
        ds = ray.data.read_datasource(_feed(self._queue), override_num_blocks=1, num_cpus=0)
        ds = ds.map_batches(
            Embedder,
            fn_constructor_kwargs={"settings_json": worker_settings(self.settings).model_dump_json()},
            batch_size=None,
            # From one worker up to `workers`, as the cluster has CPUs: after a node is lost the
            # cluster may still count its CPUs for a while, and a fixed-size pool waits for them.
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.workers),
            num_cpus=per_worker,
            # A worker lost with its node is not restarted: a restart waits for CPUs the cluster may
            # no longer have, and the batches queued on it with it (a hang, seen with kill -9 of a
            # node). Its batch fails the run instead, with one line; the same command again resumes.
            max_restarts=0,
        )
        # No prefetching: a batch is written as soon as it is back, not when the next one is.
        batches = ds.iter_batches(batch_size=None, prefetch_batches=0, batch_format="pyarrow")
        self._results = (row for table in batches for row in table.to_pylist())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._queue is not None and exc[0] is None:
                self._queue.put(_END)
                for _ in self._results or ():  # let the pipeline finish cleanly
                    pass
        finally:
            if self._started:
                _ray().shutdown()

    @property
    def window(self) -> int:
        """Return how many batches may be shipped and not yet written: enough to keep every worker busy."""
        return 2 * self.workers + 1

    def write(self, papers: list[Paper], report: IngestReport) -> None:
        """Write one batch (shipped, then waited for)."""
        self.write_all([papers], report)

    def write_all(
        self, stream: Iterable[list[Paper]], report: IngestReport, done: Done | None = None
    ) -> None:
        """Check each batch here, ship what needs embedding, and write results as they come back, in order."""
        if self._queue is None:
            raise RuntimeError("RayIngester is used outside its `with` block")
        for batch in stream:
            todo, unchanged = check(self.store, batch, self.chunker.settings)
            report.unchanged += unchanged
            if not todo:
                if done is not None:
                    done(batch)
                continue
            self._seq += 1
            self._queue.put((self._seq, pickle.dumps(todo)))
            self._in_flight.append((self._seq, batch))
            self.shipped += len(todo)
            while len(self._in_flight) >= self.window:
                self._write_next(report, done)
        while self._in_flight:
            self._write_next(report, done)

    def _write_next(self, report: IngestReport, done: Done | None) -> None:
        seq, batch = self._in_flight.popleft()
        row = self._next_result()
        if int(row["seq"]) != seq:  # never expected: Ray Data keeps the order; a loss must not pass
            raise AssistantError(
                f"the Ray pipeline returned batch {row['seq']} where batch {seq} was due; "
                "run the same command again (what was written is kept)"
            )
        store_nodes(self.store, pickle.loads(row["nodes"]), report)
        if done is not None:
            done(batch)

    def _next_result(self) -> dict[str, Any]:
        assert self._results is not None
        try:
            return next(self._results)
        except StopIteration:
            raise AssistantError(
                "the Ray pipeline ended before every batch came back; run the same command again"
            ) from None
        except Exception as exc:
            raise worker_error(exc) from None


def worker_error(exc: BaseException) -> AssistantError:
    """Turn a failure inside the Ray pipeline into one line: the worker's own message when it has one."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, AssistantError):
            return AssistantError(f"a Ray worker failed: {cause}")
        cause = cause.__cause__
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    return AssistantError(
        f"the Ray pipeline failed ({first}); what was written is kept: run the same command again"
    )
