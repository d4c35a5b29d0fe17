"""The Chroma store: the only module that imports chromadb or touches the store folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.utils import node_to_metadata_dict

from assistant import store_errors
from assistant.embeddings import spec_of
from assistant.errors import EmbeddingMismatchError, StoreError

if TYPE_CHECKING:
    from assistant.config import StoreSettings

# Chroma phones home unless told not to; set before chromadb is imported.
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

CHROMA_FILE = "chroma.sqlite3"
MODEL_KEY = "embed_model"
GENERATION_KEY = "generation"
KEYWORD_POINTER = "keyword_index.json"
# Where an interrupted OAI-PMH harvest left off: {harvest key: last resumptionToken}.
HARVESTS = "oai_harvests.json"
# Chunks read per page when scanning the whole collection (bounded memory per page). Each Chroma
# `get` of documents and metadata briefly needs ~25 KB of native memory per chunk, which the
# allocator keeps: 5,000 a page cost ~270 MB more peak RSS than 1,000 in a 125k-chunk keyword
# build, and 1,000 is no slower (offsets cost nothing measurable).
SCAN_PAGE = 1000


class Store:
    """One Chroma collection of abstract chunks, keyed `ARXIV_ID#CHUNK`, built by one embedding model.

    Embedded mode keeps the vectors in the folder `path`; server mode (`server=(host, port)`) talks
    to `chroma run` over HTTP and keeps only the derived files (keyword index, harvest state) in `path`.
    """

    def __init__(
        self,
        path: Path,
        collection: str,
        model_id: str,
        *,
        create: bool,
        server: tuple[str, int] | None = None,
    ) -> None:
        """Open the store at `path` (or on `server`); a missing one is created only when `create` is true."""
        self.path = Path(path)
        self.model_id = model_id
        self._name = collection
        self.server = server
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
    def from_settings(cls, settings: StoreSettings, model_id: str, *, create: bool) -> Store:
        """Open the store `settings` describe (embedded folder or Chroma server)."""
        server = (settings.host, settings.port) if settings.mode == "server" else None
        return cls(settings.path, settings.collection, model_id, create=create, server=server)

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
            if not create and self._name not in {c.name for c in self._client.list_collections()}:
                raise StoreError(
                    f"the Chroma server at {self.where} has no collection {self._name!r}; "
                    "build it with `assistant ingest FILE` in server mode"
                )
            return self._open_collection(self._name, self.model_id)
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
        if self.path.is_dir() and not (self.path / CHROMA_FILE).exists() and (left := leftovers(self.path)):
            # A fresh database beside old segments and keyword files would mix two stores.
            raise StoreError(
                f"{self.path / CHROMA_FILE} is missing beside {', '.join(left[:3])}: the store is "
                f"incomplete; run `assistant doctor --store {self.path}`"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(
                path=str(self.path),
                settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False),
            )
            self._client = client
            return client, self._open_collection(self._name, self.model_id)
        except Exception as exc:
            raise self.fault(exc, "open") from None

    def _open_collection(self, name: str, model_id: str) -> Any:
        # get_or_create would be simpler, but we must never touch an existing collection's metadata.
        if name in {c.name for c in self._client.list_collections()}:
            return self._client.get_collection(name, embedding_function=None)
        return self._client.create_collection(
            name,
            embedding_function=None,  # we always supply vectors: Chroma's default downloads a model
            configuration={"hnsw": {"space": "cosine"}},
            metadata={MODEL_KEY: model_id},
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
        batch = self._client.get_max_batch_size()
        if nodes:
            self._bump_generation()  # before too: a write that fails half-way still marks indexes stale
        for start in range(0, len(nodes), batch):
            part = nodes[start : start + batch]
            self._collection.upsert(
                ids=[n.node_id for n in part],
                embeddings=[n.get_embedding() for n in part],
                metadatas=[node_to_metadata_dict(n, remove_text=True) for n in part],
                documents=[n.get_content() for n in part],
            )
        if nodes:
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

    def _bump_generation(self) -> None:
        # Derived indexes (the keyword index) compare this counter to know they are stale.
        metadata = self._fresh_metadata()
        metadata[GENERATION_KEY] = int(metadata.get(GENERATION_KEY, 0)) + 1
        self._collection.modify(metadata=metadata)

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

    def scan(self) -> Iterator[tuple[list[str], list[str], list[dict[str, Any]]]]:
        """Yield (ids, documents, metadatas) pages covering every chunk."""
        offset = 0
        while True:
            page = self._collection.get(include=["documents", "metadatas"], limit=SCAN_PAGE, offset=offset)
            if not page["ids"]:
                return
            yield page["ids"], page["documents"], page["metadatas"]  # type: ignore[misc]
            offset += len(page["ids"])

    def save_keyword_index(self, bm25: Any, generation: int) -> None:
        """Persist a bm25s index built at `generation`, atomically: a reader sees old or new, never half."""
        folder = self.path / f"keyword-{generation}-{os.getpid()}"
        pointer = self.path / KEYWORD_POINTER
        tmp = pointer.with_suffix(f".tmp-{os.getpid()}")
        try:
            bm25.save(str(folder), corpus=bm25.corpus, show_progress=False)
            tmp.write_text(json.dumps({"folder": folder.name, "generation": generation}))
            os.replace(tmp, pointer)
        except OSError as exc:
            # The old pointer still names the old, whole index; drop what was half written.
            shutil.rmtree(folder, ignore_errors=True)
            tmp.unlink(missing_ok=True)
            raise self._file_fault(exc, folder, "the keyword index") from None
        for old in self.path.glob("keyword-*"):
            if old != folder and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def load_keyword_index(self) -> tuple[Any, int] | None:
        """Return the persisted (bm25s index, generation it was built at), or None if there is none."""
        import bm25s

        pointer = self.path / KEYWORD_POINTER
        try:
            info = json.loads(pointer.read_text())
            bm25 = bm25s.BM25.load(str(self.path / info["folder"]), load_corpus=True, show_progress=False)
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            return None  # missing or unreadable (also a damaged pointer): the caller rebuilds it
        return bm25, int(info["generation"])

    def keyword_index_stale(self) -> bool:
        """Return whether the persisted keyword index is missing or older than the store (cheap)."""
        try:
            built_at = json.loads((self.path / KEYWORD_POINTER).read_text())["generation"]
        except (OSError, ValueError, KeyError, TypeError):
            return True
        return bool(built_at != self.generation())

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

    def _harvests(self) -> dict[str, Any]:
        try:
            saved = json.loads((self.path / HARVESTS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # no harvest was interrupted here (an unreadable file means: start over)
        return saved if isinstance(saved, dict) else {}

    def harvest_token(self, key: str) -> str | None:
        """Return the resumptionToken an interrupted OAI-PMH harvest `key` left off at, or None."""
        token = self._harvests().get(key)
        return token if isinstance(token, str) else None

    def save_harvest_token(self, key: str, token: str | None) -> None:
        """Record where harvest `key` goes on (None: it is complete), atomically."""
        saved = self._harvests()
        if token:
            saved[key] = token
        else:
            saved.pop(key, None)
        path = self.path / HARVESTS
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(saved, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._file_fault(exc, path, "where the harvest left off") from None

    def _file_fault(self, exc: OSError, path: Path, what: str) -> StoreError:
        todo = store_errors.file_todo(exc, str(self.path))
        return StoreError(f"{path}: cannot save {what} ({exc.strerror or exc}); {todo}")


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


def leftovers(folder: Path) -> list[str]:
    """Name the files of a store in `folder` other than its database: keyword index, harvests, vectors."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name in (KEYWORD_POINTER, HARVESTS)
        or p.name.startswith("keyword-")
        or (p.is_dir() and (p / "header.bin").exists())  # an HNSW segment folder
    )


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
