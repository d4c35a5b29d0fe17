import pytest

from assistant.sources.ids import normalize_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2501.01234v2", "2501.01234"),
        ("arXiv:2501.01234", "2501.01234"),
        ("ARXIV:2501.01234v13", "2501.01234"),
        (" 2305.14387 ", "2305.14387"),
        ("0704.0001", "0704.0001"),
        ("math/0601001", "math/0601001"),
        ("math/0601001v3", "math/0601001"),
        ("hep-th/9901001v12", "hep-th/9901001"),
        ("math.AG/0601001v1", "math.AG/0601001"),
        ("http://arxiv.org/abs/2501.01234v1", "2501.01234"),
        ("https://arxiv.org/pdf/2501.01234v1.pdf", "2501.01234"),
        ("custom-42", "custom-42"),
        ("2501.01234version", "2501.01234version"),
    ],
)
def test_normalize_id(raw: str, expected: str) -> None:
    assert normalize_id(raw) == expected
