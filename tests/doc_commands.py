"""Shell commands in the project's Markdown: the code blocks of README.md and docs/**/*.md, cut
into simple commands the way a shell would read them, so that tests can check every
``kubectl logs`` and every ``jq`` a reader may paste, wherever the text puts it.

Not a full shell parser: it knows quotes, backslash line continuations, comments, pipes and
command lists, ``$(...)`` / ``<(...)`` substitutions (also inside double quotes) and
``for VAR in $(...)`` loops, which is what the documentation uses. Test modules load it by path
(``--import-mode=importlib``), as test_e2e.py loads the end-to-end check.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(```|~~~)")
#: Words that start a clause of a compound command; the simple command follows them.
KEYWORDS = {"do", "done", "then", "else", "elif", "fi", "!", "time", "{", "}"}
#: Info strings of fenced blocks that hold shell commands.
SHELL_BLOCKS = {"sh", "bash", "shell", "zsh", "console"}
#: Stands for a command substitution inside a word.
SUBSTITUTION = "$(...)"


@dataclass(frozen=True)
class Command:
    """One simple command: its words (quotes removed), where it is, and how it is fed."""

    argv: tuple[str, ...]
    source: str
    line: int
    piped_in: bool
    text: str
    #: Loop variables bound in the same block: name -> the command that lists their values.
    loops: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.text.strip()}"


def markdown_files(root: Path) -> list[Path]:
    """README.md and every Markdown file under docs/, wherever sections are."""
    files = [root / "README.md"] if (root / "README.md").is_file() else []
    if (root / "docs").is_dir():
        files += sorted((root / "docs").rglob("*.md"))
    return files


def code_blocks(path: Path) -> Iterator[tuple[int, str, str]]:
    """(first line number, info string, text) of each fenced code block."""
    lines = path.read_text().splitlines()
    start: int | None = None
    fence = info = ""
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if start is None:
            match = FENCE.match(stripped)
            if match:
                start, fence, body = number + 1, match.group(1), []
                info = stripped[len(fence) :].strip().lower()
        elif stripped.startswith(fence):
            yield start, info, "\n".join(body)
            start = None
        else:
            body.append(line)


def _closing_paren(text: str, i: int) -> int:
    """Index of the ``)`` that closes the substitution whose body starts at ``i``."""
    depth, quote = 1, ""
    while i < len(text):
        c = text[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            i += 1
        elif quote == '"' and c == '"':
            quote = ""
        elif c in "'\"" and quote != '"':
            quote = c
        elif not quote and c == "(":
            depth += 1
        elif not quote and c == ")":
            depth -= 1
            if depth == 0:
                return i
        elif quote == '"' and text.startswith("$(", i):
            i = _closing_paren(text, i + 2)
        i += 1
    raise ValueError(f"unclosed substitution in {text!r}")


def split_commands(text: str, offset: int = 0) -> Iterator[tuple[int, str, bool]]:
    """(line offset, raw text, piped in) of each simple command of ``text``, substitutions
    included (their own commands are yielded, and the substitution is replaced by a
    placeholder word in the enclosing command)."""
    text = text.replace("\\\n", "  ")
    current: list[str] = []
    start_line = offset
    piped = False
    quote = ""
    i = 0
    line = offset

    def flush(next_piped: bool) -> Iterator[tuple[int, str, bool]]:
        nonlocal current, piped, start_line
        raw = "".join(current)
        if raw.strip():
            yield start_line, raw, piped
        current = []
        piped = next_piped
        start_line = line

    while i < len(text):
        c = text[i]
        if quote == "'":
            current.append(c)
            quote = "" if c == "'" else quote
        elif c == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 1
        elif quote == '"' and c == '"':
            current.append(c)
            quote = ""
        elif c in "'\"" and not quote:
            current.append(c)
            quote = c
        elif text.startswith("$((", i):
            # Arithmetic, not a command: $((n+1)).
            end = _closing_paren(text, i + 2)
            current.append(text[i : end + 1])
            i = end
        elif text.startswith(("$(", "<(", ">("), i) and (not quote or text[i] == "$"):
            end = _closing_paren(text, i + 2)
            inner = text[i + 2 : end]
            yield from split_commands(inner, line)
            current.append(SUBSTITUTION)
            line += inner.count("\n")
            i = end
        elif quote:
            current.append(c)
        elif c == "#" and (not current or current[-1][-1:].isspace()):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif c == "\n":
            yield from flush(False)
            line += 1
            start_line = line
        elif c in ";&|()":
            double = text[i : i + 2] in ("||", "&&")
            yield from flush(c == "|" and not double)
            if double:
                i += 1
        else:
            current.append(c)
        if c == "\n" and quote:
            line += 1
        i += 1
    yield from flush(False)


def _words(raw: str) -> tuple[str, ...]:
    words = shlex.split(raw)
    while words and words[0] in KEYWORDS:
        words.pop(0)
    return tuple(words)


def commands(root: Path) -> list[Command]:
    """Every simple command in the shell code blocks of the project's Markdown: those marked
    as shell, and unmarked ones that read as shell (program output does not)."""
    found = []
    for path in markdown_files(root):
        for first, info, block in code_blocks(path):
            if info and info not in SHELL_BLOCKS:
                continue
            try:
                parsed = [(first + off, raw, piped) for off, raw, piped in split_commands(block)]
                for _, raw, _ in parsed:
                    shlex.split(raw)
            except ValueError:
                if info:
                    raise
                continue
            loops = _loops(parsed)
            for number, raw, piped in parsed:
                argv = _words(raw)
                if argv:
                    source = str(path.relative_to(root))
                    found.append(Command(argv, source, number, piped, raw, loops))
    return found


def _loops(parsed: list[tuple[int, str, bool]]) -> dict[str, tuple[str, ...]]:
    """``for VAR in $(COMMAND)``: VAR -> COMMAND's words (the next command after the loop
    head is the substitution's)."""
    loops = {}
    for index, (_, raw, _) in enumerate(parsed):
        match = re.match(rf"\s*for\s+(\w+)\s+in\s+{re.escape(SUBSTITUTION)}", raw)
        if match and index > 0:
            loops[match.group(1)] = _words(parsed[index - 1][1])
    return loops


#: kubectl's global flags that take a value, as they may stand before the verb.
GLOBAL_VALUE_FLAGS = {"-n", "--namespace", "--context", "--kubeconfig", "--cluster", "--user", "-s"}


def kubectl_verb(argv: tuple[str, ...]) -> str | None:
    """The subcommand of a kubectl command line (``logs`` in ``kubectl -n x logs pod``)."""
    words = iter(argv[1:])
    for word in words:
        if word in GLOBAL_VALUE_FLAGS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def kubectl_logs(root: Path) -> list[Command]:
    """Every ``kubectl ... logs ...`` command."""
    return [c for c in commands(root) if c.argv[0] == "kubectl" and kubectl_verb(c.argv) == "logs"]


def jq_commands(root: Path) -> list[Command]:
    """Every ``jq`` command."""
    return [c for c in commands(root) if c.argv[0] == "jq"]
