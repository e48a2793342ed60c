"""Pages made at build time, so they cannot drift from what they describe.

- ``reference/cli.md``: every command's options, rendered from the CLI itself (typer's own
  Markdown renderer over the click commands ``cryosift --help`` lists);
- ``benchmarks/``: the experiment records kept beside the benchmarks (``benchmarks/*.md``), the
  figures and tables they show (``benchmarks/results/``), and an index of them.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
RESULT_TYPES = {".png", ".txt", ".csv"}


def cli_reference() -> str:
    """Markdown of every ``cryosift`` command, in the order ``cryosift --help`` lists them."""
    from typer import _click as click
    from typer.cli import get_docs_for_click

    from cryosift.cli.main import COMMANDS, load_command

    parts = [
        "# Commands\n",
        "Generated from the command line itself when the site is built (`make docs`): what\n"
        "`cryosift COMMAND --help` prints, for every command.\n",
    ]
    for name in COMMANDS:
        cmd = load_command(name)
        ctx = click.Context(cmd, info_name=f"cryosift {name}")
        text = get_docs_for_click(obj=cmd, ctx=ctx, name=f"cryosift {name}")
        parts.append("#" + text)  # its "# `cryosift NAME`" one level below the page's title
    return "\n".join(parts)


def benchmark_index(notes: list[Path]) -> str:
    lines = [
        "# Experiment records\n",
        "What was measured, tried and kept or dropped, beside the benchmark that measured it\n"
        "(`benchmarks/` in the repository). Each script prints its command in its docstring.\n",
    ]
    for note in notes:
        title = next((ln[2:] for ln in note.read_text().splitlines() if ln.startswith("# ")), "")
        lines.append(f"- [{note.stem}]({note.name}): {title}")
    return "\n".join(lines) + "\n"


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    notes = sorted(BENCHMARKS.glob("*.md"))
    files.append(File.generated(config, "benchmarks/index.md", content=benchmark_index(notes)))
    for note in notes:
        files.append(File.generated(config, f"benchmarks/{note.name}", abs_src_path=str(note)))
    for result in sorted((BENCHMARKS / "results").iterdir()):
        if result.suffix in RESULT_TYPES:
            uri = f"benchmarks/results/{result.name}"
            files.append(File.generated(config, uri, abs_src_path=str(result)))
    return files
