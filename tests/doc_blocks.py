"""The shell blocks of README.md and the docs, and the commands in them."""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = ("bash", "shell", "sh", "console")
#: Every page whose shell blocks a person is told to run.
DOCUMENTED = ("README.md", "docs/index.rst", *sorted(
    str(path.relative_to(ROOT)) for path in (ROOT / "docs" / "user_guide").glob("*.rst")))


@dataclass(frozen=True)
class Block:
    """One shell block: its page, its place among the page's shell blocks, its text."""

    page: str
    index: int
    language: str
    line: int
    text: str

    @property
    def commands(self):
        return split_commands(self.text)

    def __str__(self):
        return f"{self.page} shell block {self.index} (line {self.line})"


def shell_blocks(page):
    """The shell blocks of ``page`` (Markdown fences or reST ``code-block``), in order."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    markdown = page.endswith(".md")
    position = 0
    while position < len(lines):
        line = lines[position]
        if markdown:
            opening = re.fullmatch(r"```(\w+)\s*", line)
        else:
            opening = re.fullmatch(r"(\s*)\.\. code-block:: (\w+)\s*", line)
        if not opening or opening.groups()[-1] not in SHELL_LANGUAGES:
            position += 1
            continue
        language, start, body = opening.groups()[-1], position + 1, []
        position += 1
        if markdown:
            while not lines[position].startswith("```"):
                body.append(lines[position])
                position += 1
        else:
            indent = len(opening.group(1)) + 3
            while position < len(lines) and (
                    not lines[position].strip() or lines[position].startswith(" " * indent)):
                body.append(lines[position][indent:])
                position += 1
        blocks.append(Block(page, index, language, start, "\n".join(body).strip("\n")))
        index += 1
    return blocks


def split_commands(text):
    """The commands of a block's text, whole.

    A command runs on over continuation lines (a trailing backslash) and over
    lines inside an open quote; blank lines are left out.
    """
    commands, pending = [], ""
    for line in text.splitlines():
        if not pending and not line.strip():
            continue
        pending += line + "\n"
        if pending.rstrip().endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # "No closing quotation": the command goes on
            continue
        commands.append(pending.strip())
        pending = ""
    assert not pending, f"unfinished command: {pending!r}"
    return commands


def all_blocks():
    return [block for page in DOCUMENTED for block in shell_blocks(page)]


def block(page, index):
    return shell_blocks(page)[index]
