"""The QBO query language (qbo-api.md §3): a small SQL subset, AND-only, one entity per statement."""

from __future__ import annotations

import functools
import heapq
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qbo_sandbox import clock, errors
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.entities import BY_PATH, SPECS, TRANSACTION, EntitySpec

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<unterminated>'(?:\\.|[^'\\])*$)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),*])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "in",
    "like",
    "orderby",
    "order",
    "by",
    "asc",
    "desc",
    "startposition",
    "maxresults",
    "count",
    "true",
    "false",
    "not",
    "is",
    "null",
}
_INT_MAX = 2**31 - 1
_KIND_NAMES = {
    "string": "<STRING_LITERAL>",
    "number": "<INTEGER>",
    "ident": "<IDENTIFIER>",
    "op": "<OPERATOR>",
}


@dataclass
class Token:
    kind: str
    text: str
    col: int

    @property
    def kw(self) -> str:
        return self.text.lower() if self.kind == "ident" and self.text.lower() in _KEYWORDS else ""


@dataclass
class Condition:
    path: list[str]
    op: str
    values: list[Any]


@dataclass
class Query:
    entity: str
    count: bool = False
    conditions: list[Condition] = field(default_factory=list)
    order: list[tuple[list[str], bool]] = field(default_factory=list)
    start: int = 1
    max_results: int | None = None
    # Properties named in the select list besides `*` (validated, and they switch on properties QBO
    # returns only when asked for, such as Item.Sku); `star` is whether `*` was in the list.
    fields: list[str] = field(default_factory=list)
    star: bool = True


def _tokenize(text: str) -> list[Token]:
    tokens = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        if kind == "ws":
            continue
        if kind == "unterminated":
            # Reported only if the parser gets that far, as a streaming lexer would.
            tokens.append(Token("lexerror", m.group(), len(text) + 1))
            return tokens
        tokens.append(Token(kind, m.group(), m.start() + 1))
    tokens.append(Token("eof", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, expected: list[str]) -> errors.QBOError:
        tok = self.peek()
        if tok.kind == "lexerror":
            return errors.query_parse(
                f'Lexical error at line 1, column {tok.col}.  Encountered: <EOF> after : "{tok.text}"'
            )
        if tok.kind == "eof":
            found = '"<EOF>"'
        else:
            kind = "<" + tok.kw.upper() + ">" if tok.kw else _KIND_NAMES.get(tok.kind, f'"{tok.text}"')
            found = f'" {kind} "{tok.text} ""'
        expect = "\n    ".join(expected)
        return errors.query_parse(
            f"Encountered {found} at line 1, column {tok.col}.\nWas expecting one of:\n    {expect} ..."
        )

    def expect_kw(self, *words: str) -> str:
        tok = self.peek()
        if tok.kw in words:
            self.i += 1
            return tok.kw
        raise self.fail([f'"{w}"' for w in words])

    def expect_punct(self, char: str) -> None:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == char:
            self.i += 1
            return
        raise self.fail([f'"{char}"'])

    def ident(self) -> str:
        tok = self.peek()
        if tok.kind == "ident" and not tok.kw:
            self.i += 1
            return tok.text
        raise self.fail(["<IDENTIFIER>"])

    def value(self) -> Any:
        tok = self.take()
        if tok.kind == "string":
            return _unescape(tok.text[1:-1])
        if tok.kind == "number":
            return float(tok.text)
        if tok.kw in ("true", "false"):
            return tok.kw == "true"
        self.i -= 1
        raise self.fail(["<STRING_LITERAL>", "<INTEGER>", '"true"', '"false"'])

    def integer(self) -> int:
        tok = self.take()
        if tok.kind == "number" and "." not in tok.text:
            return int(tok.text)
        self.i -= 1
        raise self.fail(["<INTEGER>"])

    def paging_number(self, keyword: str) -> int:
        """STARTPOSITION / MAXRESULTS: a whole number from 1 to QBO's 32-bit integer maximum.

        QBO's parser is Java: numbers past 2^31-1 cannot be an int there, and 0 or negative
        positions and page sizes mean nothing (STARTPOSITION is 1-based, QRY). Python would take
        them all silently, so they are refused here as QBO-shaped 4001 faults naming the keyword."""
        tok = self.peek()
        number = self.integer()
        if number < 1 or number > _INT_MAX:
            raise errors.query_invalid(
                f"{keyword} must be a whole number from 1 to {_INT_MAX}, not {tok.text}"
            )
        return number

    def select_list(self, query: Query) -> None:
        """`*`, `count(*)`, or properties (`Id, DisplayName`) mixed with `*` (`*, Sku`)."""
        tok = self.peek()
        if tok.kw == "count":
            self.i += 1
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            query.count = True
            return
        query.star = False
        while True:
            tok = self.peek()
            if tok.kind == "punct" and tok.text == "*":
                self.i += 1
                query.star = True
            elif tok.kind == "ident" and not tok.kw:
                self.i += 1
                query.fields.append(tok.text)
            else:
                raise self.fail(['"*"', '"count"', "<IDENTIFIER>"])
            tok = self.peek()
            if not (tok.kind == "punct" and tok.text == ","):
                return
            self.i += 1

    def parse(self) -> Query:
        self.expect_kw("select")
        query = Query("")
        self.select_list(query)
        self.expect_kw("from")
        query.entity = self.ident()
        if self.peek().kw == "where":
            self.i += 1
            query.conditions.append(self.condition())
            while self.peek().kw == "and":
                self.i += 1
                query.conditions.append(self.condition())
        if self.peek().kw in ("orderby", "order"):
            if self.take().kw == "order":
                self.expect_kw("by")
            while True:
                path = self.ident().split(".")
                desc = False
                if self.peek().kw in ("asc", "desc"):
                    desc = self.take().kw == "desc"
                query.order.append((path, desc))
                tok = self.peek()
                if tok.kind == "punct" and tok.text == ",":
                    self.i += 1
                    continue
                break
        # QRY lists STARTPOSITION before MAXRESULTS; client libraries write both orders, so both parse.
        seen: set[str] = set()
        while self.peek().kw in ("startposition", "maxresults") and self.peek().kw not in seen:
            keyword = self.take().kw
            seen.add(keyword)
            if keyword == "startposition":
                query.start = self.paging_number("STARTPOSITION")
            else:
                query.max_results = self.paging_number("MAXRESULTS")
        if self.peek().kind != "eof":
            raise self.fail(['"and"', '"orderby"', '"startposition"', '"maxresults"', "<EOF>"])
        return query

    def condition(self) -> Condition:
        path = self.ident().split(".")
        tok = self.peek()
        if tok.kind == "op":
            self.i += 1
            op = "!=" if tok.text == "<>" else tok.text
            return Condition(path, op, [self.value()])
        if tok.kw == "in":
            self.i += 1
            self.expect_punct("(")
            values = [self.value()]
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.i += 1
                values.append(self.value())
            self.expect_punct(")")
            return Condition(path, "in", values)
        if tok.kw == "like":
            self.i += 1
            tok = self.peek()
            if tok.kind != "string":
                self.value()  # a parse error for anything that is no literal at all
                raise errors.query_invalid("LIKE requires a string value")
            self.i += 1
            return Condition(path, "like", [LikePattern(tok.text[1:-1])])
        raise self.fail(['"="', '"<"', '">"', '"<="', '">="', '"!="', '"in"', '"like"'])


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


class LikePattern:
    r"""A LIKE pattern matched in linear time, case-insensitively.

    QBO's only wildcard is `%` (QRY); `_` is an ordinary character. A regex `^a.*b.*c$` backtracks
    polynomially in the number of `%` on a near miss (`C%C%C%C%CX` against a long name took
    seconds and, the server being single-threaded, blocked every other realm), so the pattern is
    split at `%` into literal pieces: the first must be a prefix, the last a suffix and the
    middle ones are found left to right, each at its leftmost place after the previous one.
    Leftmost placement is always safe for a `%`-only pattern, so there is nothing to backtrack.
    Each piece is still a (literal, case-insensitive) regex so the scanning runs in C.
    `\%` is a literal percent sign (the same backslash escape as `'`; whether QBO honours it is
    unverified), which lets clients search for names containing `%`."""

    __slots__ = ("first", "last", "last_length", "middle", "single", "source", "test")

    def __init__(self, raw: str) -> None:
        self.source = raw
        pieces: list[str] = []
        current: list[str] = []
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                current.append(raw[i + 1])
                i += 2
                continue
            if ch == "%":
                pieces.append("".join(current))
                current = []
            else:
                current.append(ch)
            i += 1
        pieces.append("".join(current))
        flags = re.IGNORECASE | re.DOTALL
        compiled = [re.compile(re.escape(p), flags) for p in pieces]
        self.single = compiled[0] if len(pieces) == 1 else None
        self.first = compiled[0] if pieces[0] else None
        self.last = compiled[-1] if len(pieces) > 1 and pieces[-1] else None
        self.last_length = len(pieces[-1])
        self.middle = [c for p, c in zip(pieces[1:-1], compiled[1:-1], strict=True) if p]
        # `test(text)` is truthy on a match. The shapes clients send most (exact, 'x%', '%x%') go
        # straight to one C-level regex call per row; the rest take the piecewise walk.
        self.test: Callable[[str], object] = self.match
        if self.single is not None:
            self.test = self.single.fullmatch
        elif self.last is None and not self.middle and self.first is not None:
            self.test = self.first.match
        elif self.last is None and self.first is None and len(self.middle) == 1:
            self.test = self.middle[0].search

    def match(self, text: str) -> bool:
        if self.single is not None:
            return self.single.fullmatch(text) is not None
        pos = 0
        end = len(text)
        if self.last is not None:
            # A case-insensitive literal match is as long as the literal, so the suffix starts here.
            end -= self.last_length
            if end < 0 or self.last.fullmatch(text, end) is None:
                return False
        if self.first is not None:
            head = self.first.match(text, 0, end)
            if head is None:
                return False
            pos = head.end()
        for piece in self.middle:
            found = piece.search(text, pos, end)
            if found is None:
                return False
            pos = found.end()
        return True


def parse(text: str) -> Query:
    if not text or not text.strip():
        raise errors.query_parse("The query provided was empty")
    return _Parser(text).parse()


# ---------------------------------------------------------------- evaluation

_REF_KEYS = ("value", "Address", "FreeFormNumber", "URI")


_NUMERIC = re.compile(r"^-?\d+(?:\.\d+)?$")


def _lookup(obj: dict[str, Any], path: list[str]) -> Any:
    if len(path) == 1 and path[0] in obj:
        node: Any = obj[path[0]]
        if isinstance(node, dict):
            for key in _REF_KEYS:
                if key in node:
                    return node[key]
            return None
        return node
    node = obj
    for part in path:
        if not isinstance(node, dict):
            return None
        if part in node:
            node = node[part]
            continue
        low = part.lower()
        for key, value in node.items():
            if key.lower() == low:
                node = value
                break
        else:
            return None
    if isinstance(node, dict):
        for key in _REF_KEYS:
            if key in node:
                return node[key]
        return None
    return node


def _as_datetime(value: str) -> datetime | None:
    if len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-" and value[:4].isdigit():
        return clock.parse_stamp(value)
    return None


@functools.lru_cache(maxsize=200_000)
def _instant(value: str) -> float | None:
    """Epoch seconds of a date/timestamp string, memoised: stored stamps repeat across queries."""
    dt = _as_datetime(value)
    return dt.timestamp() if dt is not None else None


class _Comparator:
    def __init__(self, fold: bool) -> None:
        self.fold = fold

    def key(self, value: Any) -> tuple[int, Any]:
        """Total order across types: missing < numbers/bools < dates < strings."""
        if value is None or value == "":
            return (0, 0)
        if isinstance(value, bool):
            return (1, int(value))
        if isinstance(value, int | float):
            return (1, float(value))
        text = str(value)
        head = text[:1]
        if head.isdigit() or head == "-":
            instant = _instant(text)
            if instant is not None:
                return (2, instant)
            if _NUMERIC.match(text):
                return (1, float(text))
        return (3, text.casefold() if self.fold else text)

    def coerce_pair(self, field_value: Any, literal: Any) -> tuple[Any, Any] | None:
        if isinstance(field_value, bool):
            if isinstance(literal, str):
                if literal.lower() not in ("true", "false"):
                    return None
                literal = literal.lower() == "true"
            return field_value, bool(literal)
        if isinstance(field_value, int | float):
            try:
                return float(field_value), float(literal)
            except (TypeError, ValueError):
                return None
        text = str(field_value)
        if isinstance(literal, bool):
            return text.lower(), "true" if literal else "false"
        if isinstance(literal, float):
            try:
                return float(text), literal
            except ValueError:
                return None
        lit = str(literal)
        head = text[:1]
        if not (head.isdigit() or head == "-"):
            # Plain names never parse as dates or numbers; skip those attempts (the common case).
            return (text.casefold(), lit.casefold()) if self.fold else (text, lit)
        f_instant = _instant(text)
        if f_instant is not None:
            l_instant = _instant(lit)
            if l_instant is not None:
                return f_instant, l_instant
        if text.isdigit() and lit.isdigit():
            return int(text), int(lit)
        if self.fold:
            return text.casefold(), lit.casefold()
        return text, lit

    def matches(self, cond: Condition, obj: dict[str, Any]) -> bool:
        value = _lookup(obj, cond.path)
        if cond.op == "like":
            return value is not None and bool(cond.values[0].test(str(value)))
        if cond.op in ("=", "in"):
            for literal in cond.values:
                if literal == " ":
                    if value is None or value == "":
                        return True
                    continue
                if value is None:
                    continue
                pair = self.coerce_pair(value, literal)
                if pair is not None and pair[0] == pair[1]:
                    return True
            return False
        literal = cond.values[0]
        if value is None:
            return cond.op == "!=" and literal != " "
        if literal == " ":
            return cond.op == "!=" and value != ""
        pair = self.coerce_pair(value, literal)
        if pair is None:
            return cond.op == "!="
        left, right = pair
        try:
            if cond.op == "!=":
                return bool(left != right)
            if cond.op == "<":
                return bool(left < right)
            if cond.op == ">":
                return bool(left > right)
            if cond.op == "<=":
                return bool(left <= right)
            if cond.op == ">=":
                return bool(left >= right)
        except TypeError:
            return False
        return False


def _plain_text(literal: Any) -> bool:
    """A string literal that can only ever compare as text (not a date, number, boolean or null)."""
    if not isinstance(literal, str) or literal == " " or literal.lower() in ("true", "false"):
        return False
    head = literal[:1]
    return not (head.isdigit() or head == "-")


def _compile(cond: Condition, cmp: _Comparator) -> Callable[[dict[str, Any]], bool]:
    """Specialise the common `Name = 'x'` / `IN (...)` shapes; everything else uses the general matcher."""
    if cond.op in ("=", "in") and all(_plain_text(v) for v in cond.values):
        fold = cmp.fold
        wanted = frozenset(v.casefold() if fold else v for v in cond.values)
        path = cond.path
        key = path[0] if len(path) == 1 else None

        def match_text(obj: dict[str, Any]) -> bool:
            value = obj.get(key) if key is not None else _lookup(obj, path)
            if type(value) is str:
                return (value.casefold() if fold else value) in wanted
            return cmp.matches(cond, obj)

        return match_text
    if cond.op in _ORDER_OPS and isinstance(cond.values[0], str) and cond.values[0] != " ":
        target = _instant(cond.values[0])
        if target is not None:
            compare = _ORDER_OPS[cond.op]
            path = cond.path

            def match_instant(obj: dict[str, Any]) -> bool:
                # Timestamps compare as instants whatever their offset; other values take the slow path.
                value = _lookup(obj, path)
                instant = _instant(value) if type(value) is str else None
                if instant is None:
                    return cmp.matches(cond, obj)
                return compare(instant, target)

            return match_instant
    return lambda obj: cmp.matches(cond, obj)


_ORDER_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "=": operator.eq,
    "!=": operator.ne,
}


def _id_key(obj: dict[str, Any]) -> tuple[int, str]:
    raw = str(obj.get("Id", ""))
    return (int(raw), "") if raw.isdigit() else (1 << 62, raw)


def resolve_entity(name: str, case_sensitive: bool = False) -> EntitySpec:
    spec = SPECS.get(name)
    if spec is None and not case_sensitive:
        # Intuit's query reference calls entity names case sensitive, yet node-quickbooks has always
        # sent `select * from account`, `from billPayment` (its tests, written for Intuit's sandbox,
        # expect results): QBO takes any case. `query_entity_case_sensitive` brings back the strict
        # reading (issue 15 item 3; docs/sandbox.md "Outside clients").
        spec = BY_PATH.get(name.lower())
    if spec is None:
        raise errors.query_invalid(f"Unsupported Entity '{name}' for the given query.")
    return spec


# Properties the reference marks as not filterable (qbo-api.md §3.1); Line.* is refused for all.
NOT_FILTERABLE: dict[str, set[str]] = {"Purchase": {"departmentref", "accountref"}}

NameLookup = Callable[[str, str], "list[dict[str, Any]] | None"]

# Properties every entity has, and those of every transaction, whether or not an object carries them.
_COMMON_PROPERTIES = {"id", "synctoken", "metadata", "domain", "sparse"}
_TXN_PROPERTIES = {
    "txndate",
    "docnumber",
    "totalamt",
    "balance",
    "customerref",
    "vendorref",
    "duedate",
    "privatenote",
    "currencyref",
    "exchangerate",
    "departmentref",
    "linkedtxn",
    "txnstatus",
    "line",
}
# Properties QBO leaves out of query results unless the select list names them (`SELECT *, Sku
# FROM Item`), as reported by client authors (issue 15); keyed by entity, lower-case.
ON_REQUEST: dict[str, set[str]] = {"Item": {"sku"}}
# Entities stored in another shape than QBO sends (RecurringTransaction: recurring.py): stored -> sent.
SHAPERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _known_property(spec: EntitySpec, name: str, table: dict[str, dict[str, Any]]) -> bool:
    """Whether `name` (the first segment of a property path) is a property of the entity.

    The entity specs list the properties the sandbox has rules for; any property some stored object
    carries counts too, so a client can sort on whatever QBO gave it. Anything else is a typo (or a
    property of another entity) that QBO refuses rather than silently sorting on nothing."""
    low = name.lower()
    if low in _COMMON_PROPERTIES or low in ON_REQUEST.get(spec.name, ()):
        return True
    if spec.has_active and low == "active":
        return True
    if spec.kind == TRANSACTION and low in _TXN_PROPERTIES:
        return True
    if spec.name_field and low in (spec.name_field.lower(), "fullyqualifiedname"):
        return True
    for rule_paths in (spec.max_lengths, spec.refs, dict.fromkeys(spec.required)):
        for path in rule_paths:
            if path.split(".")[0].split("[")[0].lower() == low:
                return True
    return any(name in obj or any(key.lower() == low for key in obj) for obj in table.values())


def _check_properties(query: Query, spec: EntitySpec, table: dict[str, dict[str, Any]]) -> None:
    for name in query.fields:
        if not _known_property(spec, name.split(".")[0], table):
            raise errors.query_invalid(f"property '{name}' is not a property of {spec.name}")
    for path, _ in query.order:
        if not _known_property(spec, path[0], table):
            shown = ".".join(path)
            raise errors.query_invalid(f"ORDERBY property '{shown}' is not a property of {spec.name}")


def execute(
    query: Query,
    tables: dict[str, dict[str, dict[str, Any]]],
    config: SandboxConfig,
    by_name: NameLookup | None = None,
) -> dict[str, Any]:
    """Run a parsed query; returns the `QueryResponse` object.

    `by_name(entity, display_name)` may return the candidates for a `DisplayName = '...'` condition
    from an index (None = no index); candidates are still checked against every condition."""
    spec = resolve_entity(query.entity, config.query_entity_case_sensitive)
    blocked = NOT_FILTERABLE.get(spec.name, set())
    for cond in query.conditions:
        head = cond.path[0].lower()
        if head == "line" or head in blocked:
            raise errors.query_invalid(f"property '{'.'.join(cond.path)}' is not queryable")
    if query.fields or query.order:
        _check_properties(query, spec, tables.get(spec.name, {}))
    cmp = _Comparator(config.query_case_insensitive)
    conditions = list(query.conditions)
    mentions_active = any(c.path[-1].lower() == "active" and len(c.path) == 1 for c in conditions)
    implicit_active = spec.has_active and not mentions_active and spec.name != "TaxCode"
    preds = [_compile(c, cmp) for c in conditions]
    if implicit_active:
        preds.insert(0, lambda o: o.get("Active") is not False)
    values: Any = tables.get(spec.name, {}).values()
    if by_name is not None:
        for cond in conditions:
            if len(cond.path) == 1 and cond.path[0].lower() == "displayname" and cond.op == "=":
                literal = cond.values[0]
                found = by_name(spec.name, literal) if _plain_text(literal) else None
                if found is not None:
                    values = found
                    break
    if not preds:
        rows = list(values)
    elif len(preds) == 1:
        only = preds[0]
        rows = [o for o in values if only(o)]
    else:
        rows = [o for o in values if all(p(o) for p in preds)]
    if query.count:
        return {"totalCount": len(rows)}
    start = max(query.start, 1)
    limit = config.default_max_results if query.max_results is None else query.max_results
    if limit > config.max_results_cap:
        if config.max_results_error:
            raise errors.query_invalid(f"MAXRESULTS must not exceed {config.max_results_cap}")
        limit = config.max_results_cap
    if limit < 1:
        limit = config.default_max_results
    wanted = start - 1 + limit
    key: Callable[[dict[str, Any]], Any]
    reverse = False
    if query.order and len(query.order) == 1:
        only_path, reverse = query.order[0]

        def key(o: dict[str, Any]) -> Any:
            return (cmp.key(_lookup(o, only_path)), _id_key(o))

    elif query.order and len({desc for _, desc in query.order}) == 1:
        # One direction for every key: a single sort on a composite key (Id breaks ties).
        paths = [p for p, _ in query.order]
        reverse = query.order[0][1]

        def key(o: dict[str, Any]) -> Any:
            return (*(cmp.key(_lookup(o, p)) for p in paths), _id_key(o))

    elif query.order:
        rows.sort(key=_id_key)
        for path, desc in reversed(query.order):
            rows.sort(key=lambda o, p=path: cmp.key(_lookup(o, p)), reverse=desc)  # type: ignore[misc]
        key = _id_key
        wanted = 0
    elif spec.name_field and spec.kind == "name":
        name_key = spec.name_field

        def key(o: dict[str, Any]) -> Any:
            # Name lists come back in name order (README of the sample data); Id breaks ties.
            return (str(o.get("FullyQualifiedName") or o.get(name_key) or "").casefold(), _id_key(o))

    else:
        key = _id_key
    if wanted and wanted * 4 < len(rows):
        # A small page of a big table: partial selection instead of a full sort.
        pick = heapq.nlargest if reverse else heapq.nsmallest
        rows = pick(wanted, rows, key=key)
    elif wanted:
        rows.sort(key=key, reverse=reverse)
    page = rows[start - 1 : start - 1 + limit]
    if not page:
        return {}
    hidden = ON_REQUEST.get(spec.name)
    if hidden:
        hidden = hidden - {f.lower() for f in query.fields}
        if hidden:
            page = [
                {k: v for k, v in o.items() if k.lower() not in hidden}
                if any(k.lower() in hidden for k in o)
                else o
                for o in page
            ]
    shaper = SHAPERS.get(spec.name)
    if shaper is not None:
        page = [shaper(o) for o in page]
    return {spec.name: page, "startPosition": start, "maxResults": len(page)}


def run(
    text: str,
    tables: dict[str, dict[str, dict[str, Any]]],
    config: SandboxConfig,
    by_name: NameLookup | None = None,
) -> dict[str, Any]:
    return execute(parse(text), tables, config, by_name)
