"""`assistant models install embeddinggemma`: the stronger embedding's one-time build, in one command."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from assistant.embeddings.gemma import MANIFEST, model_dir
from assistant.errors import AssistantError


def install_model(args: argparse.Namespace) -> int:
    """`models install embeddinggemma`: the one-time build, here if torch is, else `make gemma`."""
    terms = ["--accept-gemma-terms"] if args.accept_gemma_terms else []
    if (model_dir() / MANIFEST).is_file():
        print(f"embeddinggemma is built in {model_dir()}: use it with --config embeddinggemma")
        return 0
    if all(importlib.util.find_spec(name) for name in ("torch", "transformers", "safetensors")):
        from assistant.embeddings.gemma.__main__ import main as build

        return build(["build", *terms])
    checkout = Path(__file__).resolve().parents[2]  # a source checkout has the Makefile
    if (checkout / "Makefile").is_file() and shutil.which("make"):
        env = os.environ | ({"GEMMA_TERMS": "accept"} if terms else {})
        return subprocess.run(["make", "-C", str(checkout), "gemma"], env=env, check=False).returncode
    raise AssistantError(
        "building EmbeddingGemma needs torch and transformers, which this environment lacks: install the "
        "gemma-build extra into a separate venv and run `python -m assistant.embeddings.gemma build` in it"
    )
