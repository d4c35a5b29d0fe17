"""The building blocks of `Settings`: a TOML `[table]` section and a field with its env var."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def setting(default: Any, description: str, env: str, **limits: Any) -> Any:
    """Declare a field with its default, its description and the env var that sets it."""
    return Field(default, description=description, json_schema_extra={"env": env}, **limits)


class Section(BaseModel):
    """A `[table]` of the TOML profile; unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
