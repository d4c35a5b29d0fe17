"""The Chroma store: the only module that imports chromadb or touches the store folder.

Package `store`: the Chroma store (here), what its folder may hold (`folder`), the wording of its
errors (`errors`), what a stored chunk records of its paper (`records`), stored papers read back
(`papers`) and the BM25 keyword index kept beside the vectors (`keyword/`). It may import the
values modules, `sources` and `embeddings` (a store records its embedding's spec); chromadb is
imported only here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.utils import node_to_metadata_dict

from assistant.embeddings import spec_of
from assistant.errors import EmbeddingMismatchError, StoreError
from assistant.store import errors as store_errors
from assistant.store.bm25 import BM25Params
from assistant.store.folder import CHROMA_FILE, foreign, leftovers

if TYPE_CHECKING:
    from assistant.config import StoreSettings

# Chroma phones home unless told not to; set before chromadb is imported.
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

MODEL_KEY = "embed_model"
GENERATION_KEY = "generation"
# Each chunk's stamp: the change counter's value once the write that stored it is done, so "written
# since generation G" (`changed_since`) is a change feed every process can read, on a server too.
WRITTEN_KEY = "written"
# Chunks read per page when scanning the whole collection (bounded memory per page). Each Chroma
# `get` of documents and metadata briefly needs ~25 KB of native memory per chunk, which the
# allocator keeps: 5,000 a page cost ~270 MB more peak RSS than 1,000 in a 125k-chunk keyword
# build, and 1,000 is no slower (offsets cost nothing measurable).
SCAN_PAGE = 1000
# A page of chunks: their ids, documents and metadata.
Page = tuple[list[str], list[str], list[dict[str, Any]]]


class Store:
    """One Chroma collection of abstract chunks, keyed `ARXIV_ID#CHUNK`, built by one embedding model.

    Embedded mode keeps the vectors in the folder `path`; server mode (`server=(host, port)`) talks
    to `chroma run` over HTTP and `path` holds only what other modules derive (see `folder`). Either
    way `path` must hold nothing the store did not write (`folder.foreign`).
    """

    def __init__(
        self,
        path: Path,
        collection: str,
        model_id: str,
        *,
        create: bool,
        server: tuple[str, int] | None = None,
        bm25: BM25Params | None = None,
    ) -> None:
        """Open the store at `path` (or on `server`); a missing one is created only when `create` is true.

        `bm25`: how its keyword index scores (default: bm25s' defaults).
        """
        self.path = Path(path)
        self.bm25 = bm25 or BM25Params()
        self.model_id = model_id
        self._name = collection
        self.server = server
        if others := foreign(self.path):
            # Never a user's folder (`--store .`): what the store's clean-ups remove must be its own.
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise StoreError(
                f"{self.path} holds files the store did not write ({shown}); give --store a new or "
                "empty folder, or the folder of an existing store"
            )
        if server is not None:
            self._local_folder()
            self._client = _http_client(*server)
            raw = self._server_collection(create)
        else:
            self._client, raw = self._embedded(create)
        self._collection: Any = store_errors.Guarded(raw, self.where, self.fault)
        built_with = (self._collection.metadata or {}).get(MODEL_KEY)
        if built_with != model_id:
            raise EmbeddingMismatchError(
                f"store {self.where} was built with embedding model {built_with!r}, but this assistant "
                f"embeds with {model_id!r}; open it with --embedding {spec_of(str(built_with))} "
                "(or embedding.model), or re-ingest into a new --store folder"
            )

    @classmethod
    def from_settings(
        cls, settings: StoreSettings, model_id: str, *, create: bool, bm25: BM25Params | None = None
    ) -> Store:
        """Open the store `settings` describe (embedded folder or Chroma server)."""
        server = (settings.host, settings.port) if settings.mode == "server" else None
        return cls(settings.path, settings.collection, model_id, create=create, server=server, bm25=bm25)

    @property
    def where(self) -> str:
        """Name the store for messages: its folder, or the server's URL and collection."""
        return f"http://{self.server[0]}:{self.server[1]} ({self._name})" if self.server else str(self.path)

    def _local_folder(self) -> None:
        # Server mode keeps the keyword index and harvest state here, beside the client.
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot make the local folder {self.path} for the keyword index ({exc.strerror}); "
                "give another --store folder"
            ) from None

    def _server_collection(self, create: bool) -> Any:
        try:
            return self._open_collection(create)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot use the Chroma server at {self.where}: {exc}") from None

    def _embedded(self, create: bool) -> tuple[Any, Any]:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        if not self.path.exists() and not create:
            raise StoreError(
                f"store folder {self.path} does not exist; build it with "
                f"`assistant ingest --store {self.path} FILE`, or leave out --store to use ./index_store"
            )
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store path {self.path} is a file, not a folder; give a folder path")
        if self.path.is_dir() and not (self.path / CHROMA_FILE).exists():
            if left := leftovers(self.path):
                # A fresh database beside old segments and keyword files would mix two stores.
                raise StoreError(
                    f"{self.path / CHROMA_FILE} is missing beside {', '.join(left[:3])}: the store is "
                    f"incomplete; run `assistant doctor --store {self.path}`"
                )
            if not create:  # a query must not turn any folder it is pointed at into a store
                raise StoreError(
                    f"{self.path} holds no store (no {CHROMA_FILE}); build one there with "
                    f"`assistant ingest --store {self.path} FILE`, or give the folder of an existing store"
                )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(
                path=str(self.path),
                settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False),
            )
            self._client = client
            return client, self._open_collection(create)
        except Exception as exc:
            raise self.fault(exc, "open") from None

    def _open_collection(self, create: bool) -> Any:
        # get_or_create would be simpler, but we must never touch an existing collection's metadata.
        if self._name in {c.name for c in self._client.list_collections()}:
            return self._client.get_collection(self._name, embedding_function=None)
        if not create:  # only ingest creates a collection (on a shared server, someone else's too)
            raise StoreError(
                f"the store {self.where} has no collection {self._name!r}; build it with "
                f"`assistant ingest FILE`{' in server mode' if self.server else f' --store {self.path}'}"
            )
        return self._client.create_collection(
            self._name,
            embedding_function=None,  # we always supply vectors: Chroma's default downloads a model
            configuration={"hnsw": {"space": "cosine"}},
            metadata={MODEL_KEY: self.model_id},
        )

    def vector_store(self) -> Any:
        """Return the collection as a llama-index `ChromaVectorStore` for retrieval."""
        from llama_index.vector_stores.chroma import ChromaVectorStore

        return ChromaVectorStore(chroma_collection=self._collection)

    def count(self) -> int:
        """Return the number of chunks."""
        return int(self._collection.count())

    def paper_count(self) -> int:
        """Return the number of papers (each has exactly one chunk 0)."""
        return len(self._collection.get(where={"chunk": 0}, include=[])["ids"])

    def fingerprints(self, arxiv_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Return {id: (content hash, number of chunks)} for the given papers already stored."""
        if not arxiv_ids:
            return {}
        found = self._collection.get(
            where={"$and": [{"arxiv_id": {"$in": list(arxiv_ids)}}, {"chunk": 0}]},
            include=["metadatas"],
        )
        return {
            str(m["arxiv_id"]): (str(m.get("content_hash", "")), int(m.get("n_chunks", 1)))  # type: ignore[arg-type]
            for m in found["metadatas"] or []
        }

    def upsert(self, nodes: Sequence[TextNode]) -> None:
        """Write embedded nodes; the same id overwrites, so re-ingesting never duplicates."""
        if not nodes:
            return
        # Bumped before too: a write that fails half-way still marks derived indexes stale. The
        # stamp is the value after the closing bump: whoever read the counter before it sees these.
        stamp = self._bump_generation() + 1
        batch = self._client.get_max_batch_size()
        for start in range(0, len(nodes), batch):
            part = nodes[start : start + batch]
            self._collection.upsert(
                ids=[n.node_id for n in part],
                embeddings=[n.get_embedding() for n in part],
                metadatas=[{**node_to_metadata_dict(n, remove_text=True), WRITTEN_KEY: stamp} for n in part],
                documents=[n.get_content() for n in part],
            )
        self._bump_generation()

    def paper_ids(self) -> set[str]:
        """Return the id of every paper with any chunk stored (a half-written paper counts too)."""
        ids: set[str] = set()
        offset = 0
        while True:
            page = self._collection.get(include=[], limit=SCAN_PAGE, offset=offset)["ids"]
            if not page:
                return ids
            ids.update(chunk_id.rpartition("#")[0] for chunk_id in page)
            offset += len(page)

    def delete_papers(self, arxiv_ids: Sequence[str]) -> int:
        """Delete every chunk of the given papers; return how many of them were stored."""
        deleted = 0
        step = max(1, min(self._client.get_max_batch_size(), 1000))  # bounds the `$in` clause
        for start in range(0, len(arxiv_ids), step):
            part = list(arxiv_ids[start : start + step])
            where = {"arxiv_id": {"$in": part}}
            found = self._collection.get(where=where, include=[])["ids"]
            if found:
                if not deleted:
                    self._bump_generation()  # before too, as in `upsert`
                self._collection.delete(where=where)
                deleted += len({chunk_id.rpartition("#")[0] for chunk_id in found})
        if deleted:
            self._bump_generation()
        return deleted

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Delete chunks by id (stale tails of papers whose abstract got shorter)."""
        ids = list(chunk_ids)
        if ids:
            self._bump_generation()  # before too, as in `upsert`
            self._collection.delete(ids=ids)
            self._bump_generation()

    def fault(self, exc: BaseException, action: str) -> StoreError:
        """Turn a failed Chroma or file operation into one line saying what is wrong and what to do."""
        server = self.server is not None
        return store_errors.explain(exc, self.where, action, server=server, writable=self.writable)

    def writable(self) -> bool:
        """Return whether this process can really write the store folder and its database (root too)."""
        if self.server is not None:
            return True
        return writable(self.path)

    def generation(self) -> int:
        """Return the store's change counter, as written by any process (read fresh each time)."""
        return int(self._fresh_metadata().get(GENERATION_KEY, 0))

    def _fresh_metadata(self) -> dict[str, Any]:
        try:
            return dict(self._client.get_collection(self._name, embedding_function=None).metadata or {})
        except Exception as exc:
            raise self.fault(exc, "read") from None

    def _bump_generation(self) -> int:
        # Derived indexes (the keyword index) compare this counter to know they are stale.
        metadata = self._fresh_metadata()
        metadata[GENERATION_KEY] = int(metadata.get(GENERATION_KEY, 0)) + 1
        self._collection.modify(metadata=metadata)
        return int(metadata[GENERATION_KEY])

    @property
    def identity(self) -> str:
        """Return the collection's id: a store made again in the same place has another."""
        return str(self._collection.id)

    def get_chunks(self, chunk_ids: Sequence[str], *, embeddings: bool = False) -> dict[str, Any]:
        """Return Chroma's record (document, metadata, optionally embedding) of each chunk id."""
        if not chunk_ids:
            return {}
        include = ["documents", "metadatas", *(["embeddings"] if embeddings else [])]
        found = self._collection.get(ids=list(chunk_ids), include=include)
        out = {}
        for i, chunk_id in enumerate(found["ids"]):
            out[chunk_id] = {
                "document": found["documents"][i],
                "metadata": found["metadatas"][i],
                **({"embedding": found["embeddings"][i]} if embeddings else {}),
            }
        return out

    def scan(self, where: dict[str, Any] | None = None) -> Iterator[Page]:
        """Yield (ids, documents, metadatas) pages covering every chunk (that matches `where`)."""
        offset = 0
        while True:
            page = self._collection.get(
                where=where, include=["documents", "metadatas"], limit=SCAN_PAGE, offset=offset
            )
            if not page["ids"]:
                return
            yield page["ids"], page["documents"], page["metadatas"]  # type: ignore[misc]
            offset += len(page["ids"])

    def changed_since(self, generation: int) -> Iterator[Page]:
        """Yield pages of the chunks written after the change counter read `generation`."""
        return self.scan(where={WRITTEN_KEY: {"$gt": generation}})

    def pages(self, chunk_ids: Sequence[str]) -> Iterator[Page]:
        """Yield pages of the given chunks that are still stored, in bounded memory."""
        for start in range(0, len(chunk_ids), SCAN_PAGE):
            found = self._collection.get(
                ids=list(chunk_ids[start : start + SCAN_PAGE]), include=["documents", "metadatas"]
            )
            if found["ids"]:
                yield found["ids"], found["documents"], found["metadatas"]  # type: ignore[misc]

    def describe(self) -> dict[str, Any]:
        """Return what `assistant stats` shows."""
        info: dict[str, Any] = {
            "store": self.where,
            "collection": self._name,
            "papers": self.paper_count(),
            "chunks": self.count(),
            "embedding_model": self.model_id,
        }
        if self.server is None:  # a server's folder is the server's business
            info["size_bytes"] = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return info


def _http_client(host: str, port: int) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    try:
        client = chromadb.HttpClient(
            host=host, port=port, settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        )
        client.heartbeat()
    except Exception as exc:
        raise StoreError(
            f"cannot reach the Chroma server at http://{host}:{port} ({exc}); start it with "
            f'`chroma run --path DIR --host {host} --port {port}`, or set store.mode = "embedded"'
        ) from None
    return client


def writable(folder: Path) -> bool:
    """Return whether this process can create files in `folder` and open its database for writing.

    `os.access` is not enough: it says yes to root even for an immutable (`chattr +i`) file or a
    read-only mount, which refuse the write itself.
    """
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
        database = folder / CHROMA_FILE
        if database.exists():
            with open(database, "r+b"):
                pass
    except OSError:
        return False
    return True
