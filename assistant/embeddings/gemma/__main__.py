"""`python -m assistant.embeddings.gemma build|info`: make the EmbeddingGemma model once, or show it."""

import sys

from assistant.embeddings.gemma import main

sys.exit(main())
