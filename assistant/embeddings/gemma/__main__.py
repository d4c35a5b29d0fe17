"""`python -m assistant.embeddings.gemma build|info`: make the EmbeddingGemma model once, or show it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from assistant.embeddings.gemma import MANIFEST, built, model_dir
from assistant.embeddings.gemma.build import TERMS, build, require_converter
from assistant.errors import AssistantError


def terms_file() -> Path:
    """Return the file that records the Gemma Terms of Use were accepted (outside the model folder)."""
    return model_dir().with_name("embeddinggemma-terms-accepted")


def accept_terms() -> None:
    """Record that the Gemma Terms of Use were accepted, so the build never asks again."""
    path = terms_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"accepted {time.strftime('%Y-%m-%d %H:%M:%S')}: {TERMS}\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """`build`: make the model once (prints the Gemma Terms of Use notice); `info`: show the build."""
    parser = argparse.ArgumentParser(prog="python -m assistant.embeddings.gemma", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="download, check and convert EmbeddingGemma into the cache")
    make.add_argument("--accept-gemma-terms", action="store_true", help="agree to the Gemma Terms of Use")
    make.add_argument("--keep-source", action="store_true", help="keep the fp32 folder (reference tests)")
    make.add_argument("--rebuild", action="store_true", help="build again even if a finished build exists")
    commands.add_parser("info", help="print the finished build's manifest")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print((built(model_dir()) / MANIFEST).read_text(encoding="utf-8"), end="")
            return 0
        if (model_dir() / MANIFEST).is_file() and not args.rebuild:
            print(
                f"EmbeddingGemma is built in {model_dir()}: use it with --config embeddinggemma",
                file=sys.stderr,
            )
            return 0
        require_converter()  # before the question: a missing torch is said first
        agree(args.accept_gemma_terms)
        folder = build(keep_source=args.keep_source)
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        print(f"built {folder} (cosine to fp32 >= {manifest['min_cosine_to_fp32']})", file=sys.stderr)
        print(
            "use it: assistant ingest SOURCE --config embeddinggemma (its own store folder)", file=sys.stderr
        )
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def agree(flag: bool) -> None:
    """Have the Gemma Terms of Use accepted once: by the flag, by an earlier acceptance, or by asking.

    Asked only at a terminal; a script or CI passes --accept-gemma-terms. Raises unless accepted.
    """
    accepted = terms_file()
    if accepted.is_file() and not flag:
        print(
            f"Gemma Terms of Use: {accepted.read_text(encoding='utf-8').split(':')[0]} ({accepted})",
            file=sys.stderr,
        )
        return
    print(TERMS, file=sys.stderr)
    if not flag:
        if not sys.stdin.isatty():
            raise AssistantError("read the terms above, then run again with --accept-gemma-terms to build")
        reply = input("Do you accept the Gemma Terms of Use? [y/N] ").strip().lower()
        if reply not in ("y", "yes"):
            raise AssistantError("not accepted: nothing was downloaded")
    accept_terms()


if __name__ == "__main__":
    sys.exit(main())
