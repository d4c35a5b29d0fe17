"""Papers -> llama-index nodes: sentence-aligned chunks with the metadata filters and citations need."""

from __future__ import annotations

from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import MetadataMode, TextNode

from assistant.config import ChunkingSettings
from assistant.embeddings import load_tokenizer
from assistant.schema import Paper
from assistant.store.records import paper_metadata

# Only these reach the embedding and the LLM; the rest is for filters and display.
_TEXT_KEYS = ("title",)
# How llama-index writes the title before each chunk's text (its default metadata template).
TITLE_PREFIX = "title: "


def _token_ids(text: str) -> list[int]:
    return load_tokenizer().encode(text, add_special_tokens=False).ids


class Chunker:
    """Split abstracts into chunks that fit the embedding model, title-prefixed when known."""

    def __init__(self, settings: ChunkingSettings) -> None:
        self.settings = settings
        # Chunk sizes depend on each title's length: one splitter per size, made once.
        self._splitters: dict[int, SentenceSplitter] = {}

    def nodes(self, paper: Paper) -> list[TextNode]:
        """Return the chunks of one paper as nodes with ids `ID#0`, `ID#1`, ..."""
        meta = paper_metadata(paper, self.settings)
        title = None
        room = self.settings.chunk_tokens
        if self.settings.include_title and paper.title:
            title = fit_title(paper.title, self.settings.chunk_tokens // 2 - len(_token_ids(TITLE_PREFIX)))
            meta["title"] = title
            room -= len(_token_ids(f"{TITLE_PREFIX}{title}"))  # as llama-index's metadata-aware split counts
        texts = self._splitter(room).split_text(paper.abstract) or [paper.abstract]
        hidden = [k for k in meta if k not in _TEXT_KEYS or not title]
        return [
            TextNode(
                id_=f"{paper.arxiv_id}#{i}",
                text=text,
                metadata={**meta, "chunk": i, "n_chunks": len(texts)},
                excluded_embed_metadata_keys=[*hidden, "chunk", "n_chunks"],
                excluded_llm_metadata_keys=[*hidden, "chunk", "n_chunks"],
            )
            for i, text in enumerate(texts)
        ]

    def _splitter(self, room: int) -> SentenceSplitter:
        """Return a splitter into chunks of at most `room` word pieces.

        Not `split_text_metadata_aware`: it raises for a title longer than the chunk and prints to
        stdout when under 50 word pieces are left, which would break the ingest's summary line.
        """
        if room not in self._splitters:
            overlap = min(self.settings.overlap_tokens, room // 2)
            self._splitters[room] = SentenceSplitter(
                chunk_size=room, chunk_overlap=overlap, tokenizer=_token_ids
            )
        return self._splitters[room]


def fit_title(title: str, limit: int) -> str:
    """Return `title`, cut after its first `limit` word pieces if it is longer (a record gone wrong)."""
    encoding = load_tokenizer().encode(title, add_special_tokens=False)
    if len(encoding.ids) <= limit:
        return title
    return title[: encoding.offsets[limit - 1][1]].rstrip()


def embed_text(node: TextNode) -> str:
    """Return what the embedding model reads for a node (title line, then the chunk)."""
    return node.get_content(metadata_mode=MetadataMode.EMBED)
