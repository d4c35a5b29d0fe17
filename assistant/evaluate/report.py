"""Rendering an evaluation: the Markdown table, the output folder and the recall@k plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.evaluate import Report

ANSWER_LABELS = {
    "answerable": "answerable questions",
    "unanswerable": "unanswerable questions",
    "right_paper_cited": "right paper cited (answerable)",
    "first_citation_right": "first citation right (answerable)",
    "facts_present": "expected facts present (answer_contains)",
    "false_refusals": "false refusals (answerable refused)",
    "unanswerable_refused": "unanswerable refused",
    "unsupported_sentences": "sentences unsupported",
    "dropped_citation_share": "proposed citations dropped by verification",
    "passage_artefacts": "replies with 'Passage n' artefacts",
    "first_token_s_median": "first token, median (s)",
    "total_s_median": "total time, median (s)",
}


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(report: Report) -> str:
    """Return the side-by-side table of retrievers (and the answer metrics) as Markdown."""
    names = list(report.retrievers)
    metrics = [m for m in next(iter(report.retrievers.values()), {})]
    lines = [
        f"Evaluation of {report.n_questions} questions",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for metric in metrics:
        lines.append(
            f"| {metric} | " + " | ".join(_cell(report.retrievers[n].get(metric)) for n in names) + " |"
        )
    if report.answers:
        backends = list(report.answers)
        lines += ["", "| answers | " + " | ".join(backends) + " |", "|---" * (len(backends) + 1) + "|"]
        lines += [
            f"| {label} | " + " | ".join(_cell(report.answers[b].get(key)) for b in backends) + " |"
            for key, label in ANSWER_LABELS.items()
        ]
    return "\n".join(lines)


def plot(report: Report, path: Path) -> None:
    """Draw recall@k against k, one line per retriever, into a PNG (headless)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: CI and servers have none
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.5), dpi=100)
    for name, metrics in report.retrievers.items():
        axes.plot(report.ks, [metrics.get(f"recall@{k}", 0.0) for k in report.ks], marker="o", label=name)
    axes.set(xlabel="k (papers retrieved)", ylabel="recall@k", ylim=(0, 1.05), xticks=report.ks)
    axes.set_title(f"Recall@k on {report.n_questions} questions")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write(report: Report, folder: Path) -> list[Path]:
    """Write report.md, results.json, per_question.jsonl and recall_at_k.png into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "report.md": markdown(report) + "\n",
        "results.json": json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n",
        "per_question.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.per_question),
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    plot(report, folder / "recall_at_k.png")
    return [folder / name for name in [*files, "recall_at_k.png"]]
