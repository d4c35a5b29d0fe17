"""The documentation: `mkdocs build --strict` passes, and fails on what it must catch.

mkdocs reports a page left out of `nav` (and some link problems) only as INFO unless mkdocs.yml's
`validation` makes them warnings; these tests check that a broken link, a broken anchor and an
omitted page each fail the strict build, so CI (`make test`) catches them. The README is not part
of the site, so its links into docs/ are checked here too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parent.parent


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """Run `mkdocs build --strict` on root's mkdocs.yml, writing the site to `site`."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(root / "mkdocs.yml")]
    return subprocess.run(
        [*command, "--site-dir", str(site)], capture_output=True, text=True, timeout=300, cwd=root
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


@pytest.mark.parametrize(
    ("page", "text", "message"),
    [
        ("cli.md", "\nSee [nowhere](no-such-page.md).\n", "no-such-page.md"),
        ("cli.md", "\nSee [the checks](checking.md#no-such-heading).\n", "no-such-heading"),
        ("extra.md", "# A page nobody listed\n", "extra.md"),
    ],
    ids=["broken link", "broken anchor", "page left out of nav"],
)
def test_strict_mode_fails_on(tmp_path: Path, page: str, text: str, message: str) -> None:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    with (tmp_path / "docs" / page).open("a") as file:
        file.write(text)
    result = build(tmp_path, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Aborted with 1 warnings in strict mode" in output, output
    assert message in output


def test_the_readme_links_into_docs_resolve() -> None:
    """Every relative link of the README names a file that exists, and a heading there if it has #."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert any(link.startswith("docs/") for link in relative)
    for link in relative:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), f"README links to {link}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), flags=re.MULTILINE)
            assert anchor in {slugify(h, "-") for h in headings}, f"README links to {link}: no such heading"
