"""`python -m assistant.embeddings.gemma build|info`: make the EmbeddingGemma model once, or show it."""

from __future__ import annotations

import argparse
import json
import sys

from assistant.embeddings.gemma import MANIFEST, built, model_dir
from assistant.embeddings.gemma.build import TERMS, build
from assistant.errors import AssistantError


def main(argv: list[str] | None = None) -> int:
    """`build`: make the model once (prints the Gemma Terms of Use notice); `info`: show the build."""
    parser = argparse.ArgumentParser(prog="python -m assistant.embeddings.gemma", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="download, check and convert EmbeddingGemma into the cache")
    make.add_argument("--accept-gemma-terms", action="store_true", help="agree to the Gemma Terms of Use")
    make.add_argument("--keep-source", action="store_true", help="keep the fp32 folder (reference tests)")
    commands.add_parser("info", help="print the finished build's manifest")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print((built(model_dir()) / MANIFEST).read_text(encoding="utf-8"), end="")
            return 0
        print(TERMS, file=sys.stderr)
        if not args.accept_gemma_terms:
            raise AssistantError("read the terms above, then run again with --accept-gemma-terms to build")
        folder = build(keep_source=args.keep_source)
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        print(f"built {folder} (cosine to fp32 >= {manifest['min_cosine_to_fp32']})", file=sys.stderr)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
