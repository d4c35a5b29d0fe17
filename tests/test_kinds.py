"""Question kinds by rule, on development questions written for this (not the held-out bench files)."""

from __future__ import annotations

import pytest

from assistant.retrieve.kinds import comparison_sides, question_kind

OVERVIEWS = [
    "What do the papers say about prompt injection?",
    "What do the indexed papers say about instruction-following language models?",
    "What does the literature say about federated learning on phones?",
    "What is known about scaling laws for language models?",
    "Which papers study graph neural networks for molecules?",
    "What papers use contrastive learning for speech?",
    "Which studies measure gender bias in machine translation?",
    "Give me an overview of diffusion models for video.",
    "Can you give a summary of work on neural architecture search?",
    "Summarize the research on knowledge distillation.",
    "Find papers about sparse attention.",
    "List some papers on robot grasping with tactile sensing.",
    "Recommend a few recent works on 3D Gaussian splatting.",
    "Please provide references on data augmentation for low-resource languages.",
    "Are there any papers on watermarking generated text?",
    "What are the main approaches to continual learning?",
    "What methods have been proposed for detecting deepfakes?",
    "Recent advances in retrieval-augmented generation?",
    "What are the latest developments in protein structure prediction?",
    "How has research on machine reading comprehension evolved?",
    "I'm looking for research on fairness in recommender systems.",
    "Survey of methods for uncertainty estimation in deep networks",
    "What has been done on explaining transformer predictions?",
    "What do we know about adversarial robustness of vision transformers?",
    "papers on curriculum learning",
]
COMPARISONS = [
    ("How do BERT and GPT-2 differ?", ("BERT", "GPT-2")),
    ("How does dropout differ from batch normalization?", ("dropout", "batch normalization")),
    ("How is Adam different from plain SGD in practice?", ("Adam", "plain SGD")),
    ("Compare ResNet with DenseNet.", ("ResNet", "DenseNet")),
    (
        "Compare the lottery ticket paper and the pruning-at-initialization paper: which prunes earlier?",
        ("the lottery ticket paper", "the pruning-at-initialization paper"),
    ),
    ("Contrast LoRA with full fine-tuning.", ("LoRA", "full fine-tuning")),
    ("What is the difference between VAEs and GANs?", ("VAEs", "GANs")),
    (
        "What are the differences between RNNs and transformers for speech?",
        ("RNNs", "transformers for speech"),
    ),
    ("What distinguishes PPO from DPO?", ("PPO", "DPO")),
    ("CLIP vs ALIGN", ("CLIP", "ALIGN")),
    ("Mixup versus CutMix?", ("Mixup", "CutMix")),
    ("How does Mamba compare to attention on long sequences?", ("Mamba", "attention")),  # the scope: both
    ("Which is faster, FlashAttention or xFormers?", ("FlashAttention", "xFormers")),
    (
        "How do the graph transformer paper and the message-passing paper differ in expressiveness?",
        ("the graph transformer paper", "the message-passing paper"),
    ),
]
SINGLES = [
    "Which method adapts the learning rate to the batch size?",
    "How was it evaluated?",
    "What data did they train on?",
    "What did its user study find?",
    "What is LoRA?",
    "How much faster is FlashAttention than the standard implementation?",
    "Which paper introduces the Transformer?",
    "Which dataset was used to evaluate the model?",
    "Does the method need labelled data?",
    "What accuracy does the proposed model reach on ImageNet?",
    "Why does batch normalization help optimization?",
    "Who proposed dropout?",
    "What loss function does the paper optimize?",
    "Tell me about the paper on neural radiance fields.",
    "How many parameters does the largest model have?",
    "What are the limitations of this approach?",
    "How does the method scale with the number of GPUs?",
    "Can the learned policy transfer to new tasks?",
    "Is the code released?",
    "What is the main contribution of the CheckList paper?",
]


@pytest.mark.parametrize("question", OVERVIEWS)
def test_overviews(question: str) -> None:
    assert question_kind(question) == "overview"


@pytest.mark.parametrize(("question", "sides"), COMPARISONS)
def test_comparisons_and_their_sides(question: str, sides: tuple[str, str]) -> None:
    assert question_kind(question) == "comparison"
    assert comparison_sides(question) == sides


@pytest.mark.parametrize("question", SINGLES)
def test_singles(question: str) -> None:
    assert question_kind(question) == "single"
    assert comparison_sides(question) is None


def test_a_comparison_of_pronouns_names_no_sides() -> None:
    # "them" is the conversation's papers: a follow-up, not a comparison with named sides.
    assert comparison_sides("How do they and the others differ?") is None
