"""Where each setting comes from: a TOML profile, an `ASSISTANT_*` variable or a flag.

`config.Settings.load` layers them into one nested dict with each value's source beside it, so a
validation error names the file, variable or flag to fix, and never quotes the value.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from assistant.errors import ConfigError

# Unknown names that look like a secret put inline: refused with a pointer to the safe places.
_SECRET_NAME = re.compile(r"(^|_)(api_?key|key|token|secret|password)$", re.IGNORECASE)


def resolve_profile(profile: str | Path) -> Path:
    """Find a profile given as a path or as a name in `./config/` (`fast` -> `config/fast.toml`)."""
    path = Path(profile)
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        path = Path("config") / f"{profile}.toml"
    if not path.is_file():
        raise ConfigError(
            f"config profile {str(profile)!r} not found; give a TOML file path or a name in ./config/"
        )
    return path


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; fix the TOML syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def put(data: dict[str, Any], origin: dict[str, str], dotted: str, value: Any, source: str) -> None:
    *sections, name = dotted.split(".")
    node = data
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {dotted!r} is inside {section!r}, which is not a table")
        node = child
    node[name] = value
    origin[dotted] = source


def describe(exc: ValidationError, origin: dict[str, str]) -> str:
    """Say which setting from which source is wrong; never quote the value (it may be a secret)."""
    errors = exc.errors()
    secrets = [e for e in errors if e["type"] == "extra_forbidden" and _SECRET_NAME.search(str(e["loc"][-1]))]
    if secrets:
        dotted = ".".join(str(part) for part in secrets[0]["loc"])
        return (
            f"{origin.get(dotted, 'the settings')}: {dotted!r} would keep an API key in a profile; "
            "remove it and put the key in a file named by answer.api_key_file (chmod 600) "
            "or in OPENAI_API_KEY / OPENAI_COMPATIBLE_API_KEY"
        )
    error = errors[0]
    dotted = ".".join(str(part) for part in error["loc"])
    source = origin.get(dotted, "the settings")
    if error["type"] == "extra_forbidden":
        return f"{source}: unknown setting {dotted!r}; see config/default.toml for the valid names"
    return f"{source}: setting {dotted!r}: {error['msg']}"
