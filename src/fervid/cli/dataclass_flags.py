"""Command-line flags made from a dataclass's fields, so that a flag and the field it sets
cannot drift apart: the flag is the field's name (``detect_every`` -> ``--detect-every``), its
check the field's annotation (:func:`fervid.runtime.typed.check_value`: its type, bounds and
choices), its help the field's docstring followed by what it accepts and its default. A
``bool`` field is a switch (``--flip``); a field that may be None names the word for None in
its metadata (``fervid.runtime.typed.NONE_WORD``: ``--max-side full``).

A bad value ends in one line naming the flag and what it accepts (``error: argument --every:
must be an integer >= 1, got '0'``), before anything runs.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from typing import Annotated, Any, get_args, get_origin

from fervid.errors import ConfigError
from fervid.runtime.typed import NONE_WORD, check_value

TYPE_WORDS = {int: "an integer", float: "a number"}


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of dataclass ``cls``, on one line, from its
    source (``{}`` where the source cannot be read)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.replace("``", "").split())
    return docs


def help_text(doc: str) -> str:
    """A field's docstring as argparse help: begun in lower case and without its final full
    stop, like the other options' help, so that what it accepts can follow in brackets."""
    doc = doc.rstrip(".").replace("%", "%%")
    if len(doc) > 1 and doc[1].islower():
        doc = doc[0].lower() + doc[1:]
    return doc


def without_none(hint: Any) -> tuple[Any, bool]:
    """(the annotation without ``| None``, whether None was allowed)."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        others = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(others) == 1:
            return others[0], len(others) < len(get_args(hint))
    return hint, False


def accepts(hint: Any, none_word: str | None) -> str:
    """What a value of ``hint`` may be, in words: ``an integer >= 32 or full``."""
    base, constraints = hint, ()
    if get_origin(hint) is Annotated:
        base, *constraints = get_args(hint)
    described = [c.describe() for c in constraints if hasattr(c, "describe")]
    if base in TYPE_WORDS:
        text = " ".join([TYPE_WORDS[base], *described])
    else:
        text = " and ".join(described) or "a name"
    return f"{text} or {none_word}" if none_word else text


def flag_type(hint: Any, none_word: str | None, flag: str):
    """An argparse ``type=``: the text converted and checked against ``hint``."""
    description = accepts(hint, none_word)

    def parse(text: str):
        if none_word is not None and text.strip().lower() == none_word:
            return None
        try:
            return check_value(hint, text, flag)
        except ConfigError:
            raise argparse.ArgumentTypeError(f"must be {description}, got {text!r}") from None

    return parse


def add_typed_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    hint: Any,
    default: Any,
    doc: str,
    none_word: str | None = None,
    dest: str | None = None,
) -> None:
    """A flag taking a value of annotation ``hint`` (checked as such), its help ``doc``
    followed by what it accepts and its default."""
    shown = none_word if default is None else default
    parser.add_argument(
        flag,
        dest=dest,
        type=flag_type(hint, none_word, flag),
        default=default,
        metavar=(dest or flag.lstrip("-").replace("-", "_")).upper(),
        help=f"{doc} ({accepts(hint, none_word)}; default: {shown})".lstrip(),
    )


def add_dataclass_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    skip: tuple[str, ...] = (),
) -> list[str]:
    """Add a flag to ``parser`` for each field of dataclass ``cls`` but ``skip``; returns the
    field names, which are the flags' ``dest``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = field_docs(cls)
    names = []
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        doc = help_text(docs.get(field.name, ""))
        if hints[field.name] is bool:
            parser.add_argument(flag, dest=field.name, action="store_true", help=doc)
        else:
            hint, optional = without_none(hints[field.name])
            none_word = field.metadata.get(NONE_WORD) if optional else None
            default = field.default
            if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            add_typed_flag(parser, flag, hint, default, doc, none_word, field.name)
        names.append(field.name)
    return names
