"""`import assistant` stays light: heavy libraries load when first used, not on import."""

import subprocess
import sys

HEAVY = ("llama_index", "chromadb", "gradio", "onnxruntime", "llama_cpp", "openai", "matplotlib")


def test_import_assistant_loads_no_heavy_library() -> None:
    code = "import sys, assistant; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert not [name for name in HEAVY if f"'{name}'" in loaded], loaded


def test_front_door_names_resolve() -> None:
    import assistant

    assert callable(assistant.answer) and assistant.Assistant.__name__ == "Assistant"
    assert set(assistant.__all__) <= set(dir(assistant)) | {"Assistant", "answer"}
