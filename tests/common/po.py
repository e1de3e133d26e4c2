"""A small reader for gettext .po catalogues (enough for makemessages' output), for the tests."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str = ""
    msgctxt: str | None = None
    msgstr: str = ""
    msgstr_plural: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)
    obsolete: bool = False

    @property
    def translations(self) -> list[str]:
        return list(self.msgstr_plural.values()) if self.msgid_plural else [self.msgstr]

    @property
    def is_header(self) -> bool:
        return self.msgid == "" and self.msgctxt is None


def _unquote(text: str) -> str:
    # A .po string is a C string in double quotes; Python's literal syntax reads the escapes used.
    return ast.literal_eval(text)


def parse(path: Path) -> list[Entry]:
    entries: list[Entry] = []
    current = Entry()
    target: str | None = None
    started = False

    def finish() -> None:
        nonlocal current, started, target
        if started:
            entries.append(current)
        current, started, target = Entry(), False, None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            current.obsolete = True
            continue
        if line.startswith("#,"):
            current.flags.update(f.strip() for f in line[2:].split(","))
            continue
        if line.startswith("#:"):
            current.references.extend(line[2:].split())
            continue
        if line.startswith("#"):
            continue
        started = True
        if line.startswith('"'):
            value = _unquote(line)
        else:
            keyword, _, rest = line.partition(" ")
            target, value = keyword, _unquote(rest)
            if target == "msgctxt":
                current.msgctxt = ""
        if target == "msgid":
            current.msgid += value
        elif target == "msgid_plural":
            current.msgid_plural += value
        elif target == "msgctxt":
            current.msgctxt = (current.msgctxt or "") + value
        elif target == "msgstr":
            current.msgstr += value
        elif target and target.startswith("msgstr["):
            index = int(target[7:-1])
            current.msgstr_plural[index] = current.msgstr_plural.get(index, "") + value
    finish()
    return entries
