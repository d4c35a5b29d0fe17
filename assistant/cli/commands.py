"""What each `assistant` command does, and how its results are printed (inert: no raw control bytes)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from assistant import bibliography
from assistant.cli.models import install_model
from assistant.config import Settings
from assistant.errors import AssistantError, ConfigError, InputError
from assistant.inert import safe
from assistant.retrieve import RETRIEVERS
from assistant.schema import Answer, Paper, Passage
from assistant.store.papers import passage_record
from assistant.web.render import timing_text

if TYPE_CHECKING:
    from assistant.ingest import Ingester
    from assistant.ingest.fetch import LiveRequest

# JSON escapes C0 itself; with ensure_ascii=False it would let DEL and C1 through raw.
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f]")


def to_json(data: Any) -> str:
    """Return `data` as readable JSON (UTF-8 kept) in which no control character appears raw."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def warn(message: str) -> None:
    """Print a message that may quote input data on stderr, inert."""
    print(safe(message), file=sys.stderr)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(
        config=args.config,
        overrides={
            "store.path": args.store,
            "embedding.model": args.embedding,
            "retrieval.rerank": getattr(args, "rerank", None),
            "answer.llm": getattr(args, "llm", None),
            # `eval --claims` compares several verifiers (comma-separated): set one by one there.
            "answer.verifier": None
            if "," in (verifier := getattr(args, "verifier", None) or "")
            else verifier or None,
            "serve.concurrency": getattr(args, "concurrency", None),
        },
    )


def _search(args: argparse.Namespace) -> dict[str, Any]:
    # Passed as given: `Assistant` checks them as it checks every other entry point's (retrieve/limits.py).
    filters = {
        "categories": args.category or (),
        "since": args.since,
        "until": args.until,
        "author": args.author,
    }
    return {"top_k": args.top_k, "retriever": getattr(args, "retriever", None), "filters": filters}


def format_sources(result: Answer) -> str:
    """Render what follows an answer's text: removed citations, grounding, sources, warnings (inert)."""
    lines: list[str] = []
    lines.extend(f"(withheld, {s.reason}: {s.text})" for s in result.unsupported)
    if not result.grounded:
        lines.append("(not grounded: some statements cite no retrieved paper; check them in the sources)")
    if result.dropped_citations:
        lines.append(
            f"(removed citations to papers that were not retrieved: {', '.join(result.dropped_citations)})"
        )
    lines.append(f"Sources ({result.backend} answer):")  # scripts match this header: keep it stable
    lines.extend(paper_line(p, "*" if p.arxiv_id in result.citations else " ") for p in result.passages)
    if timing := timing_text(result):
        lines.append(f"({timing})")
    lines.extend(f"warning: {w}" for w in result.warnings)
    # Ids, titles and warnings all come from data or remote servers.
    return safe("\n".join(lines))


def paper_line(passage: Passage, mark: str = " ") -> str:
    """Render one retrieved paper as a line: mark, id, score, title, link (not yet made inert)."""
    title = f" {' '.join(passage.title.split())}" if passage.title else ""
    url = f"https://arxiv.org/abs/{passage.arxiv_id}"
    return f" {mark} arXiv:{passage.arxiv_id} ({passage.score:.2f}){title}  {url}"


def _ingest(args: argparse.Namespace) -> int:
    from assistant.embeddings import resolve
    from assistant.ingest import Ingester
    from assistant.ingest.fetch import LiveRequest
    from assistant.pipeline import open_store

    live = LiveRequest(
        query=args.arxiv_query,
        ids=args.arxiv_ids,
        limit=args.max,
        oai_set=args.oai_set,
        since=args.from_date,
        until=args.until,
        oai_format=args.oai_format,
    )
    if bool(args.paths) == live.given:
        raise InputError("give input files, or one of --arxiv-query, --arxiv-ids, --oai-set (not both)")
    settings = _settings(args)
    embedding = resolve(settings)  # a bad spec fails before the store is made
    if args.ray is not None:  # before the store is made: a wrong address must leave nothing behind
        from assistant.ingest.ray import check_address

        check_address(args.ray)
    store = open_store(settings, for_writing=True)
    stdout = sys.stdout
    with contextlib.ExitStack() as stack:
        if args.ray is None:
            ingester = Ingester(store, embedding.build(), settings.chunking)
        else:
            from assistant.ingest.ray import RayIngester

            # Ray's driver prints cluster events to stdout ("(raylet) The node ... has been marked
            # dead"): they go to stderr, so that stdout stays the one summary line.
            stack.enter_context(contextlib.redirect_stdout(sys.stderr))
            ingester = stack.enter_context(RayIngester(store, settings, args.ray))
        return _run_ingest(args, settings, ingester, live, stdout)


def _run_ingest(
    args: argparse.Namespace, settings: Settings, ingester: Ingester, live: LiveRequest, stdout: TextIO
) -> int:
    from assistant.ingest import IngestReport
    from assistant.ingest.fetch import fetch

    if args.paths:
        prune = args.prune_missing
        report = ingester.ingest(
            args.paths, args.format, progress=sys.stderr.isatty(), prune=prune, warn=warn
        )
        print(report.summary(), file=stdout)
        return 1 if report.failed_files else 0
    report = IngestReport()
    try:
        fetch(ingester, report, settings.fetch, live, warn, warn if sys.stderr.isatty() else None)
    finally:
        print(report.summary(), file=stdout)  # also when the fetch stops early: what it stored is kept
    return 0


def _ask(args: argparse.Namespace) -> int:
    from assistant.pipeline import Assistant

    bot = Assistant(_settings(args))
    if args.json:
        result = bot.ask(args.question, **_search(args))
        print(to_json(bibliography.answer_json(result)))
        return 0
    show_stream(bot.stream(args.question, **_search(args)))
    return 0


def show_stream(pieces: Iterator[str | Answer]) -> Answer:
    """Print an answer as its checked sentences arrive, then its sources; return the `Answer`."""
    streamed = False
    for piece in pieces:
        if isinstance(piece, str):  # a sentence whose citations are already checked
            streamed = True
            print(safe(piece), end="", flush=True)
            continue
        print("" if streamed else safe(piece.text))
        print(f"\n{format_sources(piece)}")
        return piece
    raise AssertionError("stream() always ends with the Answer")


def _chat(args: argparse.Namespace) -> int:
    from assistant.pipeline import Assistant

    bot = Assistant(_settings(args))
    history: list[Answer] = []
    if isinstance(sys.stdin, io.TextIOWrapper):
        # Bytes that are not UTF-8 reach the question check as lone surrogates, which says so in one line.
        sys.stdin.reconfigure(errors="surrogateescape")
    print(
        "Ask about the indexed abstracts; follow-ups may say 'it'. An empty line or Ctrl-D ends.",
        file=sys.stderr,
    )
    while True:
        try:
            question = input("? ")
        except EOFError:
            return 0
        if not question.strip():
            return 0
        try:
            history.append(show_stream(bot.stream(question, history=history, **_search(args))))
            print()
        except AssistantError as exc:
            warn(f"assistant: {exc}")


def _cite(args: argparse.Namespace) -> int:
    from assistant.pipeline import Assistant

    bot = Assistant(_settings(args))
    papers: dict[str, Paper] = {}
    for raw in args.ids:  # every id is checked before anything is printed
        paper = bot.paper(raw)
        papers.setdefault(paper.arxiv_id, paper)
    print(safe(bibliography.WRITERS[args.format](list(papers.values()))), end="")
    return 0


def _similar(args: argparse.Namespace) -> int:
    from assistant.pipeline import Assistant

    bot = Assistant(_settings(args))
    search = _search(args)
    found = bot.similar(args.id, search["top_k"], filters=search["filters"])
    if args.json:
        print(to_json([passage_record(p) for p in found]))
    elif found:
        print(safe("\n".join(paper_line(p) for p in found)))
    else:
        print("no other stored paper passes the filters", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from assistant.web.server import serve

    serve(
        _settings(args),
        host=args.host,
        port=args.port,
        auth=args.auth,
        auth_file=args.auth_file,
        insecure=args.insecure,
        mcp=args.mcp,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        allowed_hosts=args.allowed_host,
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from assistant.evaluate import evaluate, load_cases
    from assistant.evaluate import report as eval_report
    from assistant.pipeline import Assistant

    if (args.questions is None) == (args.claims is None):
        raise InputError("eval: give a QUESTIONS.jsonl file, or --claims FILE (not both)")
    if args.claims is not None:
        return _eval_claims(args)
    try:
        ks = [int(k) for k in args.k.split(",")]
    except ValueError:
        raise InputError(f"--k {args.k!r}: give whole numbers separated by commas, e.g. 1,5,10") from None
    if not ks or min(ks) < 1:
        raise InputError("--k values must be 1 or more")
    cases = load_cases(args.questions, warn)
    retrievers = RETRIEVERS if args.scored == "all" else (args.scored,)
    settings = _settings(args)
    bot = Assistant(
        settings.model_copy(update={"answer": settings.answer.model_copy(update={"llm": "extractive"})})
    )
    # `--llm a,b` compares answerers on the same retrieval (one store, one embedding model).
    specs = [spec.strip() for spec in (args.llm or settings.answer.llm).split(",") if spec.strip()]
    answering = [
        Assistant(
            settings.model_copy(update={"answer": settings.answer.model_copy(update={"llm": spec})}),
            embed_model=bot.embed_model,
            store=bot.store,
        )
        for spec in (specs if args.answers else [])
    ]
    report = evaluate(
        bot,
        cases,
        retrievers=retrievers,
        ks=ks,
        answers=answering,
        warn=warn,
        progress=sys.stderr.isatty(),
    )
    print(to_json(report.to_dict()) if args.json else safe(eval_report.markdown(report)))
    if args.out:
        for path in eval_report.write(report, args.out):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _eval_claims(args: argparse.Namespace) -> int:
    from assistant.config import AnswerSettings
    from assistant.evaluate import claims as claim_eval
    from assistant.pipeline import Assistant

    settings = _settings(args)
    claims = claim_eval.load_claims(args.claims, warn)
    names = [n.strip() for n in (args.verifier or settings.answer.verifier).split(",") if n.strip()]
    results = []
    shared: Assistant | None = None
    for name in names:
        try:
            answer = AnswerSettings.model_validate(settings.answer.model_dump() | {"verifier": name})
        except ValueError:
            raise ConfigError(f"--verifier {name!r}: use auto, local, answerer or none") from None
        bot = Assistant(
            settings.model_copy(update={"answer": answer}),
            embed_model=shared.embed_model if shared else None,
            store=shared.store if shared else None,
        )
        shared = shared or bot
        results.append(
            claim_eval.judge_claims(
                claims,
                bot.judge,
                functools.partial(_abstract, bot),
                name=bot.judge.name if bot.judge else "none",
                min_entailment=answer.min_entailment,
                sentences=answer.judge_sentences,
                warn=warn,
            )
        )
    if args.json:
        print(to_json([r.summary() | {"rows": r.rows} for r in results]))
    else:
        print(safe(claim_eval.markdown(results, str(args.claims))))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "claims.md").write_text(claim_eval.markdown(results, str(args.claims)) + "\n")
        (args.out / "claims.json").write_text(
            to_json([r.summary() | {"rows": r.rows} for r in results]) + "\n"
        )
        print(f"wrote {args.out / 'claims.md'} and claims.json", file=sys.stderr)
    return 0


def _abstract(bot: Any, arxiv_id: str) -> str:
    return str(bot.paper(arxiv_id).abstract)


def _stats(args: argparse.Namespace) -> int:
    from assistant.pipeline import open_store

    info: dict[str, Any] = open_store(_settings(args), for_writing=False).describe()
    print(to_json(info) if args.json else safe("\n".join(f"{k}: {v}" for k, v in info.items())))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from assistant.doctor import diagnose, repair

    settings = _settings(args)
    report = diagnose(settings)
    if args.fix and any(f.fixable and not f.ok for f in report.findings):
        done = repair(settings, report)
        report = diagnose(settings)
        report.repaired = done
    print(json.dumps(report.to_dict(), indent=2) if args.json else safe(report.text()))
    return 0 if report.healthy else 1


def _delete(args: argparse.Namespace) -> int:
    from assistant.embeddings import store_id
    from assistant.ingest import delete_papers
    from assistant.store import Store
    from assistant.store.bm25 import BM25Params

    settings = _settings(args)
    bm25 = BM25Params.of(settings.retrieval)
    store = Store.from_settings(settings.store, store_id(settings.embedding.model), create=False, bm25=bm25)
    deleted = delete_papers(store, args.ids)
    print(f"deleted {deleted} of {len(set(args.ids))} papers")
    return 0


HANDLERS = {
    "ingest": _ingest,
    "ask": _ask,
    "chat": _chat,
    "stats": _stats,
    "serve": _serve,
    "eval": _eval,
    "delete": _delete,
    "doctor": _doctor,
    "cite": _cite,
    "similar": _similar,
    "models": install_model,
}
