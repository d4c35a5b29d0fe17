"""Every fixed text the answerers say or send, in one place."""

# The answer when no retrieved passage is relevant enough; front ends and evaluation match on it.
NOT_FOUND = "The indexed abstracts do not answer this question."
