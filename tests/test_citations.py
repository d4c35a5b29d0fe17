from assistant.sources.citations import parse_citations, verify


def test_parse_in_order_of_first_appearance() -> None:
    text = "A [arXiv:2305.14387]. B [arXiv:2302.05733v2, arXiv:2305.14387]. C (arXiv:math/0601001)."
    assert parse_citations(text) == ["2305.14387", "2302.05733", "math/0601001"]


def test_fabricated_id_is_dropped_and_recorded() -> None:
    checked = verify("True claim [arXiv:2305.14387]. Made up [arXiv:9999.99999].", {"2305.14387"})
    assert checked.citations == ["2305.14387"]
    assert checked.dropped == ["9999.99999"]
    assert "9999.99999" not in checked.text
    assert checked.text == "True claim [arXiv:2305.14387]. Made up."


def test_mixed_marker_keeps_only_retrieved_ids() -> None:
    checked = verify("Both [arXiv:2305.14387; arXiv:1111.22222].", {"2305.14387"})
    assert checked.text == "Both [arXiv:2305.14387]."
    assert checked.dropped == ["1111.22222"]


def test_bare_unretrieved_id_in_prose_is_removed() -> None:
    checked = verify("As arXiv:9999.99999 shows, X [arXiv:2305.14387v2].", {"2305.14387"})
    assert "9999.99999" not in checked.text
    assert checked.citations == ["2305.14387"]
    assert checked.dropped == ["9999.99999"]


def test_versioned_citation_verifies_against_versionless_id() -> None:
    assert verify("X [arXiv:2305.14387v3]", {"2305.14387"}).citations == ["2305.14387"]


def test_text_without_citations_is_unchanged() -> None:
    checked = verify("No sources here.", {"2305.14387"})
    assert (checked.text, checked.citations, checked.dropped) == ("No sources here.", [], [])


def test_a_marker_repeated_in_a_row_is_shown_once() -> None:
    checked = verify(
        "It is 45x cheaper [arXiv:2305.14387] [arXiv:2305.14387] [arXiv:2305.14387].", {"2305.14387"}
    )
    assert checked.text == "It is 45x cheaper [arXiv:2305.14387]." and checked.citations == ["2305.14387"]
    # Two papers each once stay as they are.
    both = verify("Both do [arXiv:2305.14387] [arXiv:2302.05733].", {"2305.14387", "2302.05733"})
    assert both.text == "Both do [arXiv:2305.14387] [arXiv:2302.05733]."
