"""GateKeeper parser: tokens to a :class:`~penny.gatekeeper.ast.Script`.

Hand-written recursive descent, following the grammar sketch of the spec (§4):

.. code-block:: text

    script     = { statement } EOF
    statement  = ( type_name Identifier ":=" expression | expression [ "orSay" String ] ) ";"
    expression = and_expr { ("or" | "||") and_expr }
    and_expr   = not_expr { ("and" | "&&") not_expr }
    not_expr   = ("not" | "!") not_expr | relation
    relation   = unary [ rel_op unary | ("in" | "notIn") ( list | String ) ]
    unary      = ("-" | "negate") unary | primary
    primary    = String | Integer | Decimal | Identifier | "(" expression ")"
    list       = "(" expression { "," expression } ")"

Why hand-written rather than a parser generator or a PEG library:

* no dependency: the grammar is a dozen productions, smaller than any generator's glue;
* exact error positions and messages in FPS's own (ANTLR 2 style) format, e.g.
  ``Parse errors: line 1:9: unexpected token: instruction`` and
  ``expecting ';', found '<EOF>'``, which a generic tool would word its own way;
* bounded recursion: nesting depth is counted and capped at :data:`MAX_DEPTH`, so no input
  can exhaust the Python stack, and the work is linear in the (capped) token count.

Error recovery: after a syntax error the parser skips to the next ``;`` and goes on, so one
script can yield several errors (FPS returned one ``BadRule`` element per message), at most
:data:`MAX_ERRORS`. Any input either parses or raises :class:`BadRule`; nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from penny.gatekeeper.ast import (
    Assertion,
    BadRule,
    Compare,
    CompareOp,
    DecimalLit,
    Declaration,
    Expr,
    GkError,
    IntLit,
    ListExpr,
    Logic,
    LogicOp,
    Membership,
    Name,
    Pos,
    Script,
    Statement,
    StringLit,
    TypeName,
    Unary,
    UnaryOp,
)
from penny.gatekeeper.lexer import Token, TokenKind, tokenize

#: Deepest expression tree accepted (parentheses, not/negate chains and operator chains all
#: count), so every tree walker stays far from the interpreter's recursion limit.
MAX_DEPTH: Final = 64
#: Most statements in one script.
MAX_STATEMENTS: Final = 512
#: Most items in one ``in (…)`` list.
MAX_LIST_ITEMS: Final = 256
#: Most errors reported for one script.
MAX_ERRORS: Final = 10

#: A grammar rule: parse from the current token at ``depth``, giving the node and its depth.
Rule = Callable[[int], tuple[Expr, int]]

_COMPARE_WORDS: Final = {
    "==": CompareOp.EQ,
    "equals": CompareOp.EQ,
    "!=": CompareOp.NE,
    "notequals": CompareOp.NE,
    "<": CompareOp.LT,
    "lessthan": CompareOp.LT,
    ">": CompareOp.GT,
    "greaterthan": CompareOp.GT,
    "<=": CompareOp.LE,
    "lessthanorequals": CompareOp.LE,
    ">=": CompareOp.GE,
    "greaterthanorequals": CompareOp.GE,
}
_TYPE_WORDS: Final = {t.value: t for t in TypeName}


class _SyntaxError(Exception):
    def __init__(self, error: GkError) -> None:
        super().__init__(error.message)
        self.error = error


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    # -- token helpers -------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not TokenKind.EOF:
            self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        tok = self.tok
        return tok.kind in (TokenKind.SYMBOL, TokenKind.KEYWORD) and tok.text in texts

    def unexpected(self, tok: Token | None = None) -> _SyntaxError:
        tok = tok or self.tok
        return _SyntaxError(GkError("Parse", f"unexpected token: {tok.shown()}", tok.pos))

    def expect(self, text: str) -> Token:
        if self.at(text):
            return self.advance()
        tok = self.tok
        raise _SyntaxError(GkError("Parse", f"expecting '{text}', found '{tok.shown()}'", tok.pos))

    def end_statement(self) -> None:
        """``;``; FPS worded a stray token here as ``unexpected token: <token>``."""
        if self.at(";"):
            self.advance()
            return
        if self.tok.kind is TokenKind.EOF:
            self.expect(";")
        raise self.unexpected()

    @staticmethod
    def check_depth(depth: int, pos: Pos) -> int:
        if depth > MAX_DEPTH:
            raise _SyntaxError(
                GkError("Parse", f"expression nested deeper than {MAX_DEPTH} levels", pos)
            )
        return depth

    # -- statements ----------------------------------------------------------------------

    def script(self) -> Script:
        statements: list[Statement] = []
        errors: list[GkError] = []
        while self.tok.kind is not TokenKind.EOF:
            if len(statements) >= MAX_STATEMENTS:
                errors.append(
                    GkError("Parse", f"more than {MAX_STATEMENTS} statements", self.tok.pos)
                )
                break
            start = self.i
            try:
                statements.append(self.statement())
            except _SyntaxError as exc:
                errors.append(exc.error)
                if len(errors) >= MAX_ERRORS:
                    break
                self.recover(start)
        if errors:
            raise BadRule(tuple(errors))
        return Script(tuple(statements))

    def recover(self, start: int) -> None:
        """Skip past the next ``;`` (at least one token, so the loop always progresses)."""
        if self.i == start:
            self.advance()
        while self.tok.kind is not TokenKind.EOF:
            tok = self.advance()
            if tok.kind is TokenKind.SYMBOL and tok.text == ";":
                return

    def statement(self) -> Statement:
        tok = self.tok
        if tok.kind is TokenKind.KEYWORD and tok.text in _TYPE_WORDS:
            self.advance()
            name_tok = self.tok
            if name_tok.kind is not TokenKind.IDENT:
                raise self.unexpected()
            self.advance()
            self.expect(":=")
            value, _ = self.expression(1)
            self.end_statement()
            return Declaration(_TYPE_WORDS[tok.text], name_tok.text, value, tok.pos, name_tok.pos)
        expr, _ = self.expression(1)
        message: str | None = None
        if self.at("orsay"):
            self.advance()
            if self.tok.kind is not TokenKind.STRING:
                raise self.unexpected()
            message = self.advance().text
        self.end_statement()
        return Assertion(expr, message, tok.pos)

    # -- expressions: each returns (node, depth) -----------------------------------------

    def expression(self, depth: int) -> tuple[Expr, int]:
        return self.chain(depth, LogicOp.OR, ("or", "||"), self.and_expr)

    def and_expr(self, depth: int) -> tuple[Expr, int]:
        return self.chain(depth, LogicOp.AND, ("and", "&&"), self.not_expr)

    def chain(
        self, depth: int, op: LogicOp, words: tuple[str, ...], operand: Rule
    ) -> tuple[Expr, int]:
        """``operand`` joined by ``words`` into left-associative ``op`` nodes."""
        left, d = operand(depth)
        while self.at(*words):
            pos = self.advance().pos
            right, rd = operand(depth)
            d = self.check_depth(max(d, rd) + 1, pos)
            left = Logic(op, left, right, pos)
        return left, d

    def not_expr(self, depth: int) -> tuple[Expr, int]:
        return self.prefixed(depth, UnaryOp.NOT, ("not", "!"), self.relation)

    def prefixed(
        self, depth: int, op: UnaryOp, words: tuple[str, ...], then: Rule
    ) -> tuple[Expr, int]:
        """``then``, after any number of the prefix ``words`` (each an ``op`` node, one level
        deeper)."""
        if not self.at(*words):
            return then(depth)
        pos = self.advance().pos
        self.check_depth(depth + 1, pos)
        operand, d = self.prefixed(depth + 1, op, words, then)
        return Unary(op, operand, pos), self.check_depth(d + 1, pos)

    def relation(self, depth: int) -> tuple[Expr, int]:
        left, d = self.unary(depth)
        tok = self.tok
        if tok.kind in (TokenKind.SYMBOL, TokenKind.KEYWORD) and tok.text in _COMPARE_WORDS:
            self.advance()
            right, rd = self.unary(depth)
            node = Compare(_COMPARE_WORDS[tok.text], left, right, tok.pos)
            return node, self.check_depth(max(d, rd) + 1, tok.pos)
        if self.at("in", "notin"):
            self.advance()
            choices: ListExpr | StringLit
            if self.tok.kind is TokenKind.STRING:
                string = self.advance()
                choices, cd = StringLit(string.text, string.pos), 1
            else:
                choices, cd = self.list_expr(depth)
            node2 = Membership(left, tok.text == "notin", choices, tok.pos)
            return node2, self.check_depth(max(d, cd) + 1, tok.pos)
        return left, d

    def list_expr(self, depth: int) -> tuple[ListExpr, int]:
        open_tok = self.expect("(")
        self.check_depth(depth + 1, open_tok.pos)
        items: list[Expr] = []
        d = 0
        while True:
            if len(items) >= MAX_LIST_ITEMS:
                raise _SyntaxError(
                    GkError("Parse", f"list longer than {MAX_LIST_ITEMS} items", self.tok.pos)
                )
            item, idepth = self.expression(depth + 1)
            items.append(item)
            d = max(d, idepth)
            if not self.at(","):
                break
            self.advance()
        self.expect(")")
        return ListExpr(tuple(items), open_tok.pos), self.check_depth(d + 1, open_tok.pos)

    def unary(self, depth: int) -> tuple[Expr, int]:
        return self.prefixed(depth, UnaryOp.NEG, ("-", "negate"), self.primary)

    def primary(self, depth: int) -> tuple[Expr, int]:
        tok = self.tok
        if tok.kind is TokenKind.STRING:
            self.advance()
            return StringLit(tok.text, tok.pos), 1
        if tok.kind is TokenKind.INTEGER:
            self.advance()
            return IntLit(int(tok.text), tok.pos), 1
        if tok.kind is TokenKind.DECIMAL:
            self.advance()
            return DecimalLit(tok.text, tok.pos), 1
        if tok.kind is TokenKind.IDENT:
            self.advance()
            return Name(tok.text, tok.pos), 1
        if self.at("("):
            self.advance()
            self.check_depth(depth + 1, tok.pos)
            inner, d = self.expression(depth + 1)
            self.expect(")")
            return inner, d
        raise self.unexpected()


def parse(text: str) -> Script:
    """Parse GateKeeper ``text`` into a :class:`Script`, or raise :class:`BadRule`."""
    return _Parser(tokenize(text)).script()
