"""The Spanish catalogue: complete, not fuzzy, placeholders intact, compiled, and up to date."""

from __future__ import annotations

import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from tests.common.po import Entry, parse
from tests.common.shared_db import MANAGE

LOCALE = Path(settings.BASE_DIR) / "practice" / "locale" / "es" / "LC_MESSAGES"
PO = LOCALE / "django.po"
MO = LOCALE / "django.mo"
PLACEHOLDER = re.compile(r"%\(\w+\)[sdif]|%[sdif]|\{\w*\}")

# product.md §3.3: these exact words, wherever a status is shown.
STATUS_LABELS = {
    "Synced": "Sincronizada",
    "Not synced": "No sincronizada",
    "Skipped": "Omitida",
    "Error": "Error",
    "Syncing": "Sincronización",
}


def entries() -> list[Entry]:
    return [e for e in parse(PO) if not e.is_header]


def describe(e: Entry) -> str:
    return f"{e.msgctxt + ' | ' if e.msgctxt else ''}{e.msgid!r} ({', '.join(e.references[:2])})"


def test_every_entry_is_translated_and_none_is_fuzzy():
    problems = [
        describe(e)
        for e in entries()
        if e.obsolete or "fuzzy" in e.flags or not all(t.strip() for t in e.translations)
    ]
    assert problems == [], "untranslated, fuzzy or obsolete:\n" + "\n".join(problems)


def test_the_catalogue_is_not_empty_and_has_the_plural_forms():
    assert len(entries()) > 100
    header = next(e for e in parse(PO) if e.is_header).msgstr
    assert "Language: es" in header
    assert "Plural-Forms: nplurals=2; plural=(n != 1);" in header
    assert all(len(e.msgstr_plural) == 2 for e in entries() if e.msgid_plural)


def test_placeholders_are_kept():
    problems = []
    for e in entries():
        sources = [e.msgid, e.msgid_plural] if e.msgid_plural else [e.msgid]
        wanted = set().union(*(set(PLACEHOLDER.findall(s)) for s in sources))
        for translated in e.translations:
            found = set(PLACEHOLDER.findall(translated))
            # A singular may leave out the count ("una cuenta"); nothing may be invented.
            if not found <= wanted or (not e.msgid_plural and found != wanted):
                problems.append(f"{describe(e)} -> {translated!r}")
    assert problems == []


# A sentence end followed at once by the next sentence's capital: two texts run together.
RUN_TOGETHER = re.compile(r"[a-záéíóúñ)][.!?»][A-ZÁÉÍÓÚÑ¿¡]")


def test_no_translation_has_another_text_glued_on():
    """A bad merge of the .po once joined two msgstr blocks, so Spanish readers saw
    "…o cree uno nuevo.Vincule «X» a un cliente…" (two messages in one)."""
    problems = [
        f"{describe(e)} -> {t!r}"
        for e in entries()
        if not RUN_TOGETHER.search(e.msgid)
        for t in e.translations
        if RUN_TOGETHER.search(t)
    ]
    assert problems == []


def test_status_labels_are_exactly_the_product_words():
    by_id = {e.msgid: e.msgstr for e in entries() if e.msgctxt is None}
    for english, spanish in STATUS_LABELS.items():
        assert by_id.get(english) == spanish, english


def test_the_compiled_catalogue_matches_the_po():
    """The .mo is committed (CI may lack gettext); it must be compiled from this .po."""
    with MO.open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    stale = []
    for e in entries():
        if e.msgid_plural:
            got = [compiled.ngettext(e.msgid, e.msgid_plural, n) for n in (1, 2)]
            expected = [e.msgstr_plural[0], e.msgstr_plural[1]]
        elif e.msgctxt is not None:
            got, expected = compiled.pgettext(e.msgctxt, e.msgid), e.msgstr
        else:
            got, expected = compiled.gettext(e.msgid), e.msgstr
        if got != expected:
            stale.append(describe(e))
    assert stale == [], "run `make messages` (compilemessages):\n" + "\n".join(stale)


def test_django_uses_the_catalogue():
    with translation.override("es"):
        assert translation.gettext("Synced") == "Sincronizada"
        assert translation.pgettext("account", "Archived") == "Archivada"
        assert translation.ngettext("%(counter)s account", "%(counter)s accounts", 3) == "%(counter)s cuentas"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("xgettext") is None, reason="gettext tools not installed")
def test_every_translatable_string_in_the_source_is_in_the_catalogue(tmp_path):
    """Re-extract the strings from a copy of the source; nothing may come out untranslated."""
    copy = tmp_path / "practice"
    shutil.copytree(
        Path(settings.BASE_DIR) / "practice",
        copy,
        ignore=shutil.ignore_patterns("__pycache__", "static", "*.mo"),
    )
    subprocess.run(
        [*MANAGE, "makemessages", "-l", "es", "--no-obsolete", "--no-location"],
        cwd=copy,
        check=True,
        capture_output=True,
    )
    fresh = [e for e in parse(copy / "locale" / "es" / "LC_MESSAGES" / "django.po") if not e.is_header]
    missing = [describe(e) for e in fresh if "fuzzy" in e.flags or not all(e.translations)]
    assert missing == [], (
        "new strings need Spanish: run `make messages`, translate practice/locale/es/LC_MESSAGES/"
        "django.po, and commit the .po and .mo:\n" + "\n".join(missing)
    )
