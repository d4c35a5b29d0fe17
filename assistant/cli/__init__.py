"""The `assistant` command line: its parser and the dispatch to one handler per command.

Package `cli`, a front end: the parser and dispatch (here) and what each command does (`commands`).
Thin: the handlers call `Assistant`, the ingesters and the doctor, and print; user errors become one
line on stderr and exit code 1. It may import every earlier stage and the front ends it starts:
`web` (serve), `evaluate` (eval), `doctor`, `bibliography` (cite); only `__main__` imports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from assistant import bibliography
from assistant.cli.commands import HANDLERS, warn
from assistant.errors import AssistantError
from assistant.inert import safe
from assistant.retrieve import RETRIEVERS
from assistant.sources import FORMATS


class _Parser(argparse.ArgumentParser):
    """argparse, but a malformed command line is one line on stderr, as every other error is."""

    def error(self, message: str) -> NoReturn:
        """Print the usage error as one line and exit with status 2."""
        self.exit(2, safe(f"assistant: error: {message} (see `{self.prog} --help`)", one_line=True) + "\n")


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="TOML profile (or a name in ./config/); default $ASSISTANT_CONFIG"
    )
    common.add_argument(
        "--store", metavar="DIR", help="Chroma store folder (default ./index_store, $ASSISTANT_STORE)"
    )
    common.add_argument(
        "--embedding",
        metavar="SPEC",
        help="what embeds the store and questions: minilm, openai:MODEL, openai-compatible:MODEL@URL, "
        "ollama:MODEL, tei:URL ($ASSISTANT_EMBEDDING; a store keeps the one it was built with)",
    )

    reranking = _Parser(add_help=False)
    reranking.add_argument(
        "--rerank",
        metavar="KIND",
        help="re-order the fused candidates: none, sentences, llm, tei:URL ($ASSISTANT_RERANK)",
    )

    filtering = _Parser(add_help=False)
    filtering.add_argument("--top-k", type=int, metavar="N", help="papers to retrieve (default 5)")
    filtering.add_argument(
        "--category",
        action="append",
        metavar="CAT",
        help="only this category (cs.CL) or archive (cs.*); repeatable",
    )
    filtering.add_argument(
        "--since", metavar="YYYY-MM-DD", help="only papers first listed on or after this date"
    )
    filtering.add_argument(
        "--until", metavar="YYYY-MM-DD", help="only papers first listed on or before this date"
    )
    filtering.add_argument(
        "--author", metavar="NAME", help="only papers with an author whose name contains NAME"
    )
    search = _Parser(add_help=False, parents=[filtering])
    search.add_argument("--retriever", choices=RETRIEVERS, help="dense, bm25 or hybrid (default hybrid)")

    parser = _Parser(prog="assistant", description="Cited answers from arXiv abstracts.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest", parents=[common], help="index abstract files, or fetch abstracts from arXiv, into the store"
    )
    ingest.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        type=Path,
        help="seed listing, Kaggle JSON lines, arXiv API (Atom) or OAI-PMH XML; .gz too",
    )
    ingest.add_argument(
        "--format", default="auto", choices=FORMATS, help="input format (default: detect from content)"
    )
    ingest.add_argument("--prune-missing", action="store_true", help="delete stored papers the inputs lack")
    ingest.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="chunk and embed on a Ray cluster: alone, a local Ray instance; auto, HOST:PORT or "
        "ray://HOST:PORT join a running one (needs the `ray` extra)",
    )
    live = ingest.add_argument_group("fetching from arXiv instead of files (politely: one request per 3 s)")
    live.add_argument("--arxiv-query", metavar="QUERY", help='arXiv API search, e.g. "cat:cs.CL AND abs:rag"')
    live.add_argument("--max", type=int, metavar="N", help="results of --arxiv-query to fetch (default 1000)")
    live.add_argument("--arxiv-ids", metavar="ID,ID", help="fetch these papers, e.g. 2305.14387,2005.04118")
    live.add_argument("--oai-set", metavar="SET", help="harvest an OAI-PMH set: cs, math, physics:hep-th")
    live.add_argument("--from", dest="from_date", metavar="YYYY-MM-DD", help="harvest what changed since")
    live.add_argument("--until", metavar="YYYY-MM-DD", help="harvest what changed up to this day")
    live.add_argument(
        "--oai-format", choices=("arXivRaw", "arXiv", "oai_dc"), help="metadataPrefix (default arXivRaw)"
    )

    answering = _Parser(add_help=False)
    answering.add_argument(
        "--llm",
        metavar="SPEC",
        help="who writes the answer: auto, extractive, local, llamacpp:PATH, openai:MODEL, "
        "openai-compatible:MODEL@URL, ollama:MODEL ($ASSISTANT_LLM)",
    )
    answering.add_argument(
        "--verifier",
        metavar="WHO",
        help="who judges that each sentence's cited abstract entails it: auto, local, answerer, none "
        "($ASSISTANT_VERIFIER; eval --claims takes several, comma-separated)",
    )

    ask = commands.add_parser(
        "ask", parents=[common, search, reranking, answering], help="answer one question with cited sources"
    )
    ask.add_argument("question", metavar="QUESTION")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")

    commands.add_parser(
        "chat",
        parents=[common, search, reranking, answering],
        help="a conversation in the terminal: follow-up questions understood",
    )

    stats = commands.add_parser("stats", parents=[common], help="what the store holds")
    stats.add_argument("--json", action="store_true", help="print as JSON")

    doctor = commands.add_parser(
        "doctor", parents=[common], help="check the store, say what is wrong and how to fix it"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    doctor.add_argument(
        "--fix",
        action="store_true",
        help="repair what is safe: rebuild the keyword index, drop half-written papers",
    )

    delete = commands.add_parser("delete", parents=[common], help="remove papers from the store by arXiv id")
    delete.add_argument("ids", nargs="+", metavar="ID", help="e.g. 2501.01234 or arXiv:2501.01234v2")

    evaluation = commands.add_parser(
        "eval",
        parents=[common, reranking, answering],
        help="score retrieval (and answers) on your test questions",
    )
    evaluation.add_argument(
        "questions", metavar="QUESTIONS.jsonl", type=Path, nargs="?", help="JSON lines of questions"
    )
    evaluation.add_argument(
        "--claims",
        metavar="FILE",
        type=Path,
        help='instead: score the answer gate on labelled claims, JSON lines of {"question": ..., '
        '"claim": "... [arXiv:ID]", "supported": true|false}',
    )
    evaluation.add_argument(
        "--retriever",
        dest="scored",  # not `retriever`: "all" is no setting value
        default="hybrid",
        choices=(*RETRIEVERS, "all"),
        help="which retriever(s) to score (default hybrid)",
    )
    evaluation.add_argument("--k", default="1,5,10", metavar="K,K,...", help="cut-offs for hit/recall/nDCG")
    evaluation.add_argument("--answers", action="store_true", help="also answer each question and score it")
    evaluation.add_argument("--json", action="store_true", help="print the results as JSON")
    evaluation.add_argument("--out", metavar="DIR", type=Path, help="write the report files and a plot here")

    cite = commands.add_parser(
        "cite", parents=[common], help="print citations of stored papers for a reference manager"
    )
    cite.add_argument("ids", nargs="+", metavar="ID", help="e.g. 2005.04118 or arXiv:2005.04118v2")
    cite.add_argument(
        "--format", default="bibtex", choices=bibliography.FORMATS, help="entry format (default bibtex)"
    )

    similar = commands.add_parser(
        "similar", parents=[common, filtering], help="the stored papers most like a stored one"
    )
    similar.add_argument("id", metavar="ID", help="a stored paper, e.g. 2005.04118")
    similar.add_argument("--json", action="store_true", help="print the papers as JSON")

    models = commands.add_parser("models", help="optional models: install embeddinggemma (once)")
    models.add_argument("action", choices=("install",), help="install: build it once into the cache")
    models.add_argument("model", choices=("embeddinggemma",), help="the model")
    models.add_argument(
        "--accept-gemma-terms",
        action="store_true",
        help="agree to the Gemma Terms of Use without being asked",
    )

    serve = commands.add_parser("serve", parents=[common, reranking, answering], help="the web chat (Gradio)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    serve.add_argument("--auth", metavar="USER:PASSWORD", help="require this login (needed off 127.0.0.1)")
    serve.add_argument(
        "--auth-file",
        metavar="FILE",
        help="the login as one line USER:PASSWORD in FILE (chmod 600), kept out of ps and shell "
        "history; or set $ASSISTANT_AUTH",
    )
    serve.add_argument("--ssl-certfile", metavar="PEM", help="serve https with this certificate (chain) file")
    serve.add_argument("--ssl-keyfile", metavar="PEM", help="the private key of --ssl-certfile")
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (NAME or NAME:PORT: a reverse proxy's, a DNS "
        "name of this machine); others get 403; repeatable",
    )
    serve.add_argument(
        "--insecure", action="store_true", help="allow a non-local --host without --auth (trusted networks)"
    )
    serve.add_argument(
        "--concurrency", type=int, metavar="N", help="questions answered at once; more wait (default 8)"
    )
    serve.add_argument(
        "--mcp",
        action="store_true",
        help="also serve the MCP tools search_papers, ask, get_paper at /gradio_api/mcp/ (needs .[mcp])",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors become one line on stderr and exit code 1."""
    args = _parser().parse_args(argv)
    handler = HANDLERS[args.command]
    try:
        return handler(args)
    except AssistantError as exc:
        warn(f"assistant: error: {exc}")  # messages may quote input files or servers
        return 1
    except KeyboardInterrupt:
        print("assistant: interrupted", file=sys.stderr)
        return 130
