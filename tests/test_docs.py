"""Every Python example of the README and the docs site runs, and every generated table matches its data.

``python -m pytest -q -k docs`` selects these. Each ```python block runs in a fresh namespace with a temporary folder
as the working directory; a block that needs something this machine cannot have (weights, a dataset) is shown as
```bash or ```text instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def doc_files(root: Path = ROOT) -> list[Path]:
    """The README and every Markdown page under ``docs/``."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def python_blocks(path: Path, root: Path = ROOT) -> list[tuple[str, str]]:
    """``(id, code)`` of each ```python block of ``path``; the id is ``<file>:<line of the fence>``."""
    text = path.read_text()
    out = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        out.append((f"{path.relative_to(root).as_posix()}:{line}", match.group(1)))
    return out


@contextlib.contextmanager
def _cwd(path: Path):
    # contextlib.chdir needs Python 3.11; the package supports 3.10.
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_block(code: str, name: str, cwd: Path) -> str:
    """Runs ``code`` as a script of its own in ``cwd``; returns what it printed. Raises what the code raises."""
    namespace = {"__name__": "__main__"}
    out = io.StringIO()
    with _cwd(cwd), contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), namespace)  # noqa: S102 - the code is the docs' own example
    return out.getvalue()


BLOCKS = [block for path in doc_files() for block in python_blocks(path)]


@pytest.mark.parametrize("name,code", BLOCKS, ids=[f"docs-{name}" for name, _ in BLOCKS])
def test_docs_example_runs(name: str, code: str, tmp_path: Path) -> None:
    printed = run_block(code, name, tmp_path)
    # Examples print what a user needs to see (achieved bpp, whether a target was missed).
    assert printed.strip(), f"{name} prints nothing"


def test_docs_examples_cover_readme_and_site() -> None:
    files = {name.split(":")[0] for name, _ in BLOCKS}
    assert "README.md" in files
    assert {"docs/getting-started.md", "docs/guides/bitrate.md", "docs/guides/codecs.md"} <= files


def test_docs_collector_finds_and_fails_a_broken_block(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# x\n\n```python\nprint(1)\n```\n")
    (tmp_path / "docs" / "page.md").write_text(
        "text\n\n```bash\nexit 1\n```\n\n```python\nimport math\nprint(math.sqrt(-1))\n```\n")
    blocks = [b for path in doc_files(tmp_path) for b in python_blocks(path, tmp_path)]
    assert [name for name, _ in blocks] == ["README.md:3", "docs/page.md:7"]
    assert run_block(blocks[0][1], blocks[0][0], tmp_path) == "1\n"
    with pytest.raises(ValueError, match="math domain error"):
        run_block(blocks[1][1], blocks[1][0], tmp_path)


def test_docs_readme_tables_are_generated() -> None:
    hooks = _hooks()
    text = (ROOT / "README.md").read_text()
    names = hooks.MARKER.findall(text)
    assert {"defaults", "pipeline"} <= set(names)
    assert hooks.fill(text, keep_markers=True) == text, "README tables differ from docs/data/: python docs/hooks.py"
    # A hand edit inside a generated table is caught.
    start = text.index("<!-- table: defaults -->")
    edited = text[:start] + text[start:].replace(" → ", " -> ", 1)
    assert hooks.fill(edited, keep_markers=True) != edited


def test_docs_every_table_marker_renders() -> None:
    hooks = _hooks()
    used = set()
    for path in doc_files():
        text = path.read_text()
        used |= set(hooks.MARKER.findall(text))
        filled = hooks.fill(text, keep_markers=False)
        assert "<!-- table:" not in filled
    assert used == set(hooks.TABLES), f"tables no page uses: {set(hooks.TABLES) - used}"
    with pytest.raises(KeyError, match="known tables"):
        hooks.render("no-such-table")


def test_docs_readme_is_a_landing_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    links = re.findall(r"\]\((docs/[^)#]+)", "\n".join(lines))
    assert links, "the README links into the docs"
    for link in links:
        assert (ROOT / link).exists(), link


def test_docs_recipe_docstrings_name_their_siblings_and_default_codecs() -> None:
    import ast

    from augcomp.codecs import entry
    from augcomp.tasks.settings import DEFAULT_CODECS

    recipes = ("cls", "det", "seg")
    words = {"jpeg": "JPEG", "jpeg2000": "JPEG 2000", "avif": "AVIF", "webp": "WebP", "jpegxl": "JPEG XL",
             "heic": "HEIC"}
    for name in recipes:
        doc = ast.get_docstring(ast.parse((ROOT / "recipes" / f"{name}.py").read_text()))
        siblings = " and ".join(f"``{s}.py``" for s in recipes if s != name)
        assert f"shared with {siblings}" in doc, name
        line = next(line for line in doc.splitlines() if "(default:" in line and "one codec per family" in line)
        listed = line.split("(default:")[1].split(", one codec per family")[0]
        codecs = DEFAULT_CODECS.split(",")
        for c in codecs:
            entry(c)  # a default that is not a codec would fail here
        expected = [words.get(c, c) for c in codecs]
        assert listed.strip() == ", ".join(expected[:-1]) + " and " + expected[-1], (name, listed)
