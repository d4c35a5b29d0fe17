"""Answering: whether to answer, generation with a checked sentence stream, the extractive answerer."""
