"""What the model is shown: the sentences that matter from the relevant passages, fenced as data.

Prompt tokens dominate the latency on a CPU, so the context is cut to a token budget; passage text
is flattened so it cannot close the passages' fence or pass for a line of the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from assistant.llms import prompts
from assistant.retrieve.sentences import Scored
from assistant.schema import Passage

# English prose runs ~4 characters per token for the GPT-2/Qwen/Llama tokenizers; close enough
# for a budget, and it needs no tokenizer (a hosted model's is not at hand).
CHARS_PER_TOKEN = 4
HEADER_TOKENS = 6  # a passage's "[arXiv:ID]" label, before its title
# Passage text must not close the fence around the passages (prompts.PASSAGES_OPEN/CLOSE).
_FENCE = re.compile(r"<\s*/?\s*passages\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Context:
    """The passages shown to the model, each cut down to the sentences that matter."""

    papers: list[tuple[Passage, list[str]]]

    def ids(self) -> list[str]:
        """Return the arXiv ids in the order they are shown."""
        return [p.arxiv_id for p, _ in self.papers]

    def render(self) -> str:
        """Return the passages as the user message shows them, each as data on two lines."""
        return "\n\n".join(
            prompts.PASSAGE.format(
                arxiv_id=p.arxiv_id,
                title=f" {as_data(p.title)}" if p.title else "",
                text=as_data(" ".join(chosen)),
            )
            for p, chosen in self.papers
        )


def as_data(text: str) -> str:
    """Flatten passage text to one line that cannot close the passages' fence or fake a prompt line."""
    return _FENCE.sub("(passages)", " ".join(text.split()))


def approx_tokens(text: str) -> int:
    """Estimate a text's length in LLM tokens."""
    return len(text) // CHARS_PER_TOKEN + 1


def select_context(
    relevant: Sequence[Scored], passages: Sequence[Passage], *, max_tokens: int, paper_ratio: float
) -> Context:
    """Keep the sentences closest to the question, across relevant passages, within `max_tokens`.

    A paper whose best sentence is below `paper_ratio` of the best paper's is left out: small models
    cite such noise.
    """
    best: dict[int, float] = {}
    for item in relevant:
        best[item.rank] = max(best.get(item.rank, -1.0), item.similarity)
    floor = paper_ratio * max(best.values(), default=0.0)
    chosen: list[Scored] = []
    papers: set[int] = set()
    used = 0
    # Prompt tokens dominate CPU latency, so the budget is strict: skip what does not fit.
    for item in sorted((i for i in relevant if best[i.rank] >= floor), key=lambda item: -item.similarity):
        header = HEADER_TOKENS + approx_tokens(item.passage.title or "")
        cost = approx_tokens(item.sentence) + (0 if item.rank in papers else header)
        if used + cost <= max_tokens or not chosen:
            chosen.append(item)
            papers.add(item.rank)
            used += cost
    chosen.sort(key=lambda item: (item.rank, item.position))
    return Context(
        [
            (p, [c.sentence for c in chosen if c.rank == rank])
            for rank, p in enumerate(passages)
            if rank in papers
        ]
    )


def build_messages(question: str, context: Context, *, hosted: bool = False) -> list[ChatMessage]:
    """Return the grounded chat: the fixed system prompt, then passages, question and rules."""
    system, user = (
        (prompts.HOSTED_SYSTEM_PROMPT, prompts.HOSTED_USER_PROMPT)
        if hosted
        else (prompts.SYSTEM_PROMPT, prompts.USER_PROMPT)
    )
    return [
        ChatMessage(role=MessageRole.SYSTEM, content=system),
        ChatMessage(role=MessageRole.USER, content=user.format(passages=context.render(), question=question)),
    ]
