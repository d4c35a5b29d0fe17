"""`assistant doctor` tells the owner of a big MiniLM store what EmbeddingGemma would cost to re-ingest."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import doctor
from assistant.embeddings import store_id
from tests.helpers.settings import make_settings


def test_advice_is_papers_times_the_measured_rates() -> None:
    detail, how = doctor.reingest_advice(store_id("minilm"), 20_000) or ("", "")
    # 20,000 / 4.4 papers/s = 4,545 s; 20,000 / 37 = 541 s (MODELS.md, README "Measured")
    assert "20,000 papers" in detail and "~1 h 16 min" in detail and "~9 min" in detail
    assert "4.4 papers/s" in detail and "0.784" in detail
    assert "--config embeddinggemma" in how and "assistant models install embeddinggemma" in how
    assert "~5 h 41 min" in (doctor.reingest_advice(store_id("minilm"), 90_000) or ("",))[0]


def test_no_advice_for_small_or_other_stores() -> None:
    assert doctor.reingest_advice(store_id("minilm"), doctor.ADVISE_FROM - 1) is None
    assert doctor.reingest_advice("embeddinggemma-300m-int8", 100_000) is None


def test_doctor_notes_it_without_calling_it_a_problem(
    seed_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(seed_store)
    assert not [f for f in doctor.diagnose(settings).findings if f.note]  # 10 papers: nothing to say
    monkeypatch.setattr(doctor, "ADVISE_FROM", 10)
    report = doctor.diagnose(settings)
    [note] = [f for f in report.findings if f.note]
    assert report.healthy and "10 papers embedded with MiniLM" in note.detail
    assert "  note     stronger model: 10 papers" in report.text() and "healthy" in report.text()
    assert report.to_dict()["checks"][-1]["note"] is True
