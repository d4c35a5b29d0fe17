"""LLM answer latency: this pipeline versus a plain llama-index CondensePlusContextChatEngine.

Both run the same questions over the same store (the bundled abstracts) with the same model
object, streaming. Prints time to first token and total time (median, p90), how many answers
cite the paper that holds the answer, and the ratio (b)/(a).

    python bench/llm_latency.py                                  # the bundled local model
    python bench/llm_latency.py --llm llamacpp:/path/model.gguf --rounds 2

(b) gets what a plain engine needs to be comparable: this project's system prompt (the citation
rule) and each retrieved chunk prefixed with its `[arXiv:ID]`, so it can cite at all; otherwise
its defaults: the top-k chunks whole, in its own context prompt.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from llama_index.core import VectorStoreIndex
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from assistant.config import Settings
from assistant.embeddings import default_embedding
from assistant.llms.prompts import SYSTEM_PROMPT
from assistant.pipeline import Assistant, open_store
from assistant.schema import Answer
from assistant.sources.citations import verify

# Each answer is stated in exactly one bundled abstract.
QUESTIONS = [
    ("How much cheaper than crowdworkers is AlpacaFarm's simulated human feedback?", "2305.14387"),
    ("What malicious content can instruction-following LLMs produce?", "2302.05733"),
    ("What does the midpoint of a learned neural network subspace improve?", "2102.10472"),
    ("What does AdaScale SGD adapt to large-batch training?", "2007.05105"),
    ("What do Set Distribution Networks learn to do?", "2006.10705"),
    ("What does the loss for neural scene representations enforce equivariance to?", "2006.07630"),
    ("How many more bugs did users find with CheckList?", "2005.04118"),
    ("What does a GAN discriminator learn in the energy-based model view?", "1910.13101"),
    ("How is the loss function adapted during training in the meta-learning approach?", "1905.05895"),
    ("How many papers were analysed to study how academic publishing evolved?", "1809.07841"),
]


class CitableRetriever(BaseRetriever):
    """Dense top-k over the store, each chunk's text prefixed with its `[arXiv:ID]`."""

    def __init__(self, inner: BaseRetriever) -> None:
        super().__init__()
        self._inner = inner

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._inner.retrieve(query_bundle)
        return [
            NodeWithScore(
                node=TextNode(text=f"[arXiv:{h.node.metadata['arxiv_id']}] {h.node.get_content()}"),
                score=h.score,
            )
            for h in hits
        ]


def timed(pieces: Iterator[str]) -> tuple[float, float, str]:
    """Drain a stream of text pieces; return seconds to the first piece, in all, and the text."""
    start = time.perf_counter()
    first = None
    text = ""
    for piece in pieces:
        if piece and first is None:
            first = time.perf_counter() - start
        text += piece
    total = time.perf_counter() - start
    return (first if first is not None else total), total, text


Run = Callable[[str], tuple[float, float, list[str], str]]


def run_pipeline(bot: Assistant) -> Run:
    """Return a runner for (a): this project's `Assistant.stream`."""

    def run(question: str) -> tuple[float, float, list[str], str]:
        result: list[Answer] = []

        def pieces() -> Iterator[str]:
            for item in bot.stream(question):
                if isinstance(item, Answer):
                    result.append(item)
                else:
                    yield item

        ttft, total, _ = timed(pieces())
        return ttft, total, result[0].citations, result[0].text

    return run


def run_engine(bot: Assistant, top_k: int) -> Run:
    """Return a runner for (b): a plain CondensePlusContextChatEngine over the same store and model."""
    index = VectorStoreIndex.from_vector_store(bot.store.vector_store(), embed_model=bot.embed_model)
    retriever = CitableRetriever(index.as_retriever(similarity_top_k=top_k))
    llm = bot.llm

    def run(question: str) -> tuple[float, float, list[str], str]:
        engine = CondensePlusContextChatEngine.from_defaults(
            retriever=retriever, llm=llm, system_prompt=SYSTEM_PROMPT
        )
        response = engine.stream_chat(question)
        ttft, total, text = timed(response.response_gen)
        ids = [n.node.get_content().split("]")[0].removeprefix("[arXiv:") for n in response.source_nodes]
        checked = verify(text, ids)
        return ttft, total, checked.citations, checked.text

    return run


def summary(name: str, rows: list[tuple[float, float, bool]]) -> dict[str, float]:
    """Return median and p90 of TTFT and total time, and the right-citation count."""
    ttft = sorted(r[0] for r in rows)
    total = sorted(r[1] for r in rows)

    def p90(values: list[float]) -> float:
        return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]

    return {
        "ttft_med": statistics.median(ttft),
        "ttft_p90": p90(ttft),
        "total_med": statistics.median(total),
        "total_p90": p90(total),
        "right": sum(r[2] for r in rows),
        "n": len(rows),
    }


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", default="local", help="answerer spec for both (default: local)")
    parser.add_argument("--rounds", type=int, default=1, help="times each question is asked (default 1)")
    parser.add_argument("--store", type=Path, help="an indexed store (default: the bundled abstracts)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp) / "index_store"
        settings = Settings.load(overrides={"store.path": store, "answer.llm": args.llm}, env={})
        if args.store is None:
            open_store(settings, for_writing=True)
        bot = Assistant(settings, embed_model=default_embedding(settings.embedding.threads))
        bot.ensure_indexed()
        start = time.perf_counter()
        bot.llm  # noqa: B018 - load the model (and warm its cache) outside the timings
        print(f"{bot.backend}: loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        runners = {
            "(a) this pipeline": run_pipeline(bot),
            "(b) CondensePlusContextChatEngine": run_engine(bot, settings.retrieval.top_k),
        }
        for run in runners.values():
            run("What is this collection about?")  # warm-up, untimed
        rows: dict[str, list[tuple[float, float, bool]]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for question, arxiv_id in QUESTIONS:
                for name, run in runners.items():  # interleaved, so machine noise hits both alike
                    ttft, total, cited, text = run(question)
                    rows[name].append((ttft, total, arxiv_id in cited))
                    flat = " ".join(text.split())
                    print(
                        f"{name[:3]} {ttft:5.1f} {total:5.1f} {cited} {question}\n    {flat[:160]}",
                        file=sys.stderr,
                    )

    stats = {name: summary(name, r) for name, r in rows.items()}
    a, b = stats.values()
    print(
        f"\n{bot.backend}, {len(QUESTIONS)} questions x {args.rounds} round(s), "
        f"threads={settings.answer.threads}, context budget={settings.answer.max_context_tokens} tokens\n"
    )
    print("| | first token, median | p90 | total, median | p90 | cites the right paper |")
    print("|---|---|---|---|---|---|")
    for name, s in stats.items():
        print(
            f"| {name} | {s['ttft_med']:.1f} s | {s['ttft_p90']:.1f} s | {s['total_med']:.1f} s "
            f"| {s['total_p90']:.1f} s | {s['right']:.0f}/{s['n']:.0f} |"
        )
    print(
        f"| ratio (b)/(a) | {b['ttft_med'] / a['ttft_med']:.1f}x | {b['ttft_p90'] / a['ttft_p90']:.1f}x "
        f"| {b['total_med'] / a['total_med']:.1f}x | {b['total_p90'] / a['total_p90']:.1f}x | |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
