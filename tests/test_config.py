"""Settings precedence: defaults < TOML profile < ASSISTANT_* env < flags."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from assistant.config import Settings, env_vars
from assistant.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_precedence(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('[store]\npath = "from-toml"\n[retrieval]\ntop_k = 7\nmin_score_hybrid = 0.5\n')
    env = {"ASSISTANT_CONFIG": str(profile), "ASSISTANT_TOP_K": "9", "ASSISTANT_STORE": "from-env"}
    settings = Settings.load(env=env, overrides={"store.path": "from-flag", "retrieval.top_k": None})
    assert settings.store.path == Path("from-flag")
    assert settings.retrieval.top_k == 9
    assert settings.retrieval.min_score() == 0.5
    assert Settings.load(env={}).store.path == Path("index_store")


def test_default_profile_matches_the_code_defaults() -> None:
    profile = tomllib.loads((ROOT / "config" / "default.toml").read_text())
    assert Settings.model_validate(profile) == Settings()
    assert Settings.load(ROOT / "config" / "default.toml", env={}) == Settings()


def test_every_setting_has_an_env_var_and_description() -> None:
    names = env_vars()
    assert names["store.path"] == "ASSISTANT_STORE"
    assert len(set(names.values())) == len(names)
    for section, info in Settings.model_fields.items():
        for field in info.default_factory.model_fields.values():  # type: ignore[union-attr]
            assert field.description, section


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text("[retrieval]\ntopk = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown setting 'retrieval.topk'"):
        Settings.load(profile, env={})


def test_bad_value_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"\$ASSISTANT_TOP_K: setting 'retrieval.top_k'"):
        Settings.load(env={"ASSISTANT_TOP_K": "many"})


def test_missing_and_broken_profiles(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Settings.load("no-such-profile", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[store\n")
    with pytest.raises(ConfigError, match="TOML syntax"):
        Settings.load(broken, env={})
