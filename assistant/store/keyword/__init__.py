"""The BM25 keyword index over the store's chunks: bm25s segments searched together, kept up to date.

Package `store.keyword`: building segments (`segments`), their files and manifest (`files`),
loading and catching up (`live`), growing on ingest (`grow`) and searching (`search`). It may import
the rest of `store` and the stages before it.
"""

from assistant.store.keyword.grow import append
from assistant.store.keyword.live import KeywordIndex, Snapshot, catch_up, load_or_build, rebuild, up_to_date
from assistant.store.keyword.search import KeywordRetriever, query_terms, stems
from assistant.store.keyword.segments import (
    LANGUAGE,
    TOKEN_PATTERN,
    build,
    light_entry,
    stemmer,
    text_of,
    tokenizer,
)

__all__ = [
    "LANGUAGE",
    "TOKEN_PATTERN",
    "KeywordIndex",
    "KeywordRetriever",
    "Snapshot",
    "append",
    "build",
    "catch_up",
    "light_entry",
    "load_or_build",
    "rebuild",
    "query_terms",
    "stemmer",
    "stems",
    "text_of",
    "tokenizer",
    "up_to_date",
]
