"""GateKeeper lexer: script text to tokens, with 1-based line/column positions.

Lexical rules (spec §3): single-quoted strings without escapes (a string cannot contain
``'``), bare integers and decimals, CamelCase identifiers, the symbol operators and
``;``/``,``/``(``/``)``/``:=``. Whitespace (space, tab, CR, LF) separates tokens; there are no
comments. Keywords and identifiers are case-insensitive (decision: the one real error message,
``unexpected token: instruction`` for ``Instruction``, shows FPS folded them); keyword tokens
carry their lower-case text, identifiers keep their spelling.

Limits keep lexing linear and bounded: the script length, the token count and each literal's
size are capped, and exceeding any cap is a :class:`~penny.gatekeeper.ast.BadRule`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from penny.gatekeeper.ast import BadRule, GkError, Pos

#: Largest script accepted, in UTF-8 bytes.
MAX_SCRIPT_BYTES: Final = 64 * 1024
#: Largest number of tokens in one script.
MAX_TOKENS: Final = 8192
#: Longest string literal, in characters.
MAX_STRING_CHARS: Final = 1024
#: Longest number literal, in characters (digits and the decimal point).
MAX_NUMBER_CHARS: Final = 19
#: Longest identifier.
MAX_IDENTIFIER_CHARS: Final = 128

#: Reserved words, lower case. Word operators map to their canonical symbol in the parser.
KEYWORDS: Final = frozenset(
    {
        "orsay",
        "in",
        "notin",
        "and",
        "or",
        "not",
        "equals",
        "notequals",
        "lessthan",
        "greaterthan",
        "lessthanorequals",
        "greaterthanorequals",
        "negate",
        "string",
        "money",
        "duration",
        "integer",
        "double",
        "boolean",
        "datetime",
    }
)

_SYMBOLS: Final = ("==", "!=", "<=", ">=", "&&", "||", ":=", "<", ">", "!", "-", "(", ")", ",", ";")
_WHITESPACE: Final = frozenset(" \t\r\n")


class TokenKind(enum.Enum):
    IDENT = "identifier"
    KEYWORD = "keyword"
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    SYMBOL = "symbol"
    EOF = "end of script"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # keyword: lower case; string: the contents without quotes; EOF: ""
    pos: Pos

    def shown(self) -> str:
        """How an error message names this token (identifiers folded, as FPS did)."""
        if self.kind is TokenKind.EOF:
            return "<EOF>"
        if self.kind is TokenKind.STRING:
            return f"'{self.text}'"
        if self.kind is TokenKind.IDENT:
            return self.text.lower()
        return self.text


def _is_ident_start(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _is_ident_part(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _fail(message: str, pos: Pos | None) -> BadRule:
    return BadRule((GkError("Parse", message, pos),))


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens ending with one EOF token, or raise :class:`BadRule`."""
    if not isinstance(text, str):
        raise _fail("script must be text", None)
    if len(text) > MAX_SCRIPT_BYTES or len(text.encode("utf-8", "surrogatepass")) > (
        MAX_SCRIPT_BYTES
    ):
        raise _fail(f"script is longer than {MAX_SCRIPT_BYTES} bytes", None)
    tokens: list[Token] = []
    i, line, col, n = 0, 1, 1, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            if ch == "\n":
                line, col = line + 1, 1
            else:
                col += 1
            i += 1
            continue
        if len(tokens) >= MAX_TOKENS:
            raise _fail(f"script has more than {MAX_TOKENS} tokens", Pos(line, col))
        pos = Pos(line, col)
        if ch == "'":
            token, i, line, col = _scan_string(text, i, pos)
            tokens.append(token)
            continue
        if _is_digit(ch):
            token, j = _scan_number(text, i, pos)
        elif _is_ident_start(ch):
            token, j = _scan_word(text, i, pos)
        else:
            token = _scan_symbol(text, i, pos)
            j = i + len(token.text)
        tokens.append(token)
        col += j - i
        i = j
    tokens.append(Token(TokenKind.EOF, "", Pos(line, col)))
    return tokens


def _scan_string(text: str, i: int, pos: Pos) -> tuple[Token, int, int, int]:
    """The string literal opening at ``text[i]``, at ``pos``: its token, the index after it,
    and the line and column after it (a string may span lines)."""
    end = text.find("'", i + 1)
    if end < 0:
        raise _fail("expecting ''', found '<EOF>'", pos)
    body = text[i + 1 : end]
    if len(body) > MAX_STRING_CHARS:
        raise _fail(f"string longer than {MAX_STRING_CHARS} characters", pos)
    line, col = pos.line, pos.column
    newlines = body.count("\n")
    if newlines:
        line += newlines
        col = len(body) - body.rfind("\n") + 1
    else:
        col += len(body) + 2
    return Token(TokenKind.STRING, body, pos), end + 1, line, col


def _scan_number(text: str, i: int, pos: Pos) -> tuple[Token, int]:
    """The integer or decimal starting at ``text[i]``, at ``pos``, and the index after it."""
    n = len(text)
    j = i
    while j < n and _is_digit(text[j]):
        j += 1
    kind = TokenKind.INTEGER
    if j + 1 < n and text[j] == "." and _is_digit(text[j + 1]):
        j += 1
        while j < n and _is_digit(text[j]):
            j += 1
        kind = TokenKind.DECIMAL
    if j - i > MAX_NUMBER_CHARS:
        raise _fail(f"number longer than {MAX_NUMBER_CHARS} characters", pos)
    if j < n and _is_ident_part(text[j]):
        raise _fail(f"unexpected char: '{text[j]}'", Pos(pos.line, pos.column + j - i))
    return Token(kind, text[i:j], pos), j


def _scan_word(text: str, i: int, pos: Pos) -> tuple[Token, int]:
    """The keyword (lower-cased) or identifier starting at ``text[i]`` and the index after it."""
    n = len(text)
    j = i
    while j < n and _is_ident_part(text[j]):
        j += 1
    word = text[i:j]
    if len(word) > MAX_IDENTIFIER_CHARS:
        raise _fail(f"identifier longer than {MAX_IDENTIFIER_CHARS} characters", pos)
    lower = word.lower()
    if lower in KEYWORDS:
        return Token(TokenKind.KEYWORD, lower, pos), j
    return Token(TokenKind.IDENT, word, pos), j


def _scan_symbol(text: str, i: int, pos: Pos) -> Token:
    """The symbol at ``text[i]`` (the first of ``_SYMBOLS`` that matches), or :class:`BadRule`."""
    for symbol in _SYMBOLS:
        if text.startswith(symbol, i):
            return Token(TokenKind.SYMBOL, symbol, pos)
    ch = text[i]
    shown = ch if ch.isprintable() else f"0x{ord(ch):X}"
    raise _fail(f"unexpected char: '{shown}'", pos)
