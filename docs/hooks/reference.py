"""mkdocs hook: the reference pages' tables, written from the code while the site builds.

A page holds a marker where a generated part goes; nothing in those parts is copied by hand:

- ``<!-- cli-reference -->``: every ``animevae`` subcommand of the real argparse parser
  (``animevae.cli.build_parser``) with its flags, arguments, defaults, choices and help;
- ``<!-- presets -->``: each preset of ``animevae.config.PRESETS`` as the flags it sets;
- ``<!-- config-fields -->``: every field of ModelConfig, TrainConfig and DataConfig (the keys of a
  ``--config`` file and of ``animevae.train``) with its type, default, flag and help.

A marker the hook does not know, or a page that lost one, fails the build (``mkdocs build --strict``).
"""

from __future__ import annotations

import argparse
import re
import typing
from dataclasses import fields

PAGES = {"reference/cli.md": ("cli-reference",), "reference/presets.md": ("presets", "config-fields")}
MARKER = re.compile(r"<!-- (cli-reference|presets|config-fields) -->")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser``, by name, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's one-line help (what ``animevae --help`` lists)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string a parser accepts (``--data``, ``--no-flip`` ...)."""
    return {o for action in parser._actions for o in action.option_strings}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _argument(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices:
        return " \\| ".join(f"`{c}`" for c in action.choices)
    kind = {int: "N", float: "X"}.get(action.type, "TEXT")
    return f"`{kind}`" + (" (repeatable)" if isinstance(action, argparse._AppendAction) else "")


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {"default": action.default, "prog": "animevae"}
    shown = action.default not in (None, argparse.SUPPRESS, False, True) and "default" not in text
    if shown:
        text = f"{text} (default: {action.default})".strip()
    if action.required:
        text = f"**required.** {text}"
    return _cell(text)


def command_markdown(name: str, parser: argparse.ArgumentParser, summary: str) -> str:
    lines = [f"## animevae {name}", "", _cell(summary[:1].upper() + summary[1:]) + "."]
    if parser.description:
        lines += ["", _cell(parser.description)]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        title = {"options": "", "optional arguments": ""}.get(group.title, group.title)
        lines += ["", f"**{title}**" if title else "", "", "| flag | argument | what it does |", "|---|---|---|"]
        lines += [f"| {', '.join(f'`{o}`' for o in a.option_strings)} | {_argument(a)} | {_help(a)} |" for a in actions]
    return "\n".join(line for i, line in enumerate(lines) if line or (i and lines[i - 1]))


def cli_reference() -> str:
    from animevae.cli import build_parser

    parser = build_parser()
    names, helps = subcommands(parser), summaries(parser)
    out = ["`animevae --version` prints the version; `animevae COMMAND --help` prints what follows for one command.", ""]
    out += ["| command | what it does |", "|---|---|"] + [f"| [`{n}`](#animevae-{n}) | {_cell(helps.get(n, ''))} |" for n in names]
    return "\n".join(out + [""] + [command_markdown(n, p, helps.get(n, "")) + "\n" for n, p in names.items()])


def _train_flag(key: str) -> str:
    from animevae.cli import build_parser

    train = subcommands(build_parser())["train"]
    action = next(a for a in train._actions if a.dest == key)
    return action.option_strings[0]


def _setting(key: str, value) -> str:
    flag = _train_flag(key)
    if isinstance(value, bool):
        return f"`{flag}`"
    return f"`{flag} {value:g}`" if isinstance(value, float) else f"`{flag} {value}`"


def presets_table() -> str:
    from animevae.config import PRESETS, TrainConfig

    rows = ["| preset | flags it sets | sampler it records |", "|---|---|---|"]
    for name, settings in PRESETS.items():
        flags = " ".join(_setting(k, v) for k, v in settings.items() if k != "sampler") or "none: every default is the seed notebook's"
        rows.append(f"| `{name}` | {flags} | `{settings.get('sampler', TrainConfig.sampler)}` |")
    return "\n".join(rows)


def _type_name(hint) -> str:
    args = typing.get_args(hint)
    return " or ".join("none" if a is type(None) else a.__name__ for a in args) if args else hint.__name__


def config_fields() -> str:
    from animevae.config import SECTIONS

    out = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        out += [f"**[{section}]** (`{cls.__name__}`)", "", "| key | type | default | flag | what it sets |", "|---|---|---|---|---|"]
        for f in fields(cls):
            default = "none" if f.default is None else f"`{f.default}`"
            choices = f.metadata.get("choices")
            help_text = f.metadata.get("help", "") + (f" ({', '.join(choices)})" if choices else "")
            out.append(f"| `{f.name}` | {_type_name(hints[f.name])} | {default} | `{_train_flag(f.name)}` | {_cell(help_text)} |")
        out.append("")
    return "\n".join(out)


GENERATORS = {"cli-reference": cli_reference, "presets": presets_table, "config-fields": config_fields}


def on_page_markdown(markdown: str, page, **_) -> str:
    expected = PAGES.get(page.file.src_uri, ())
    found = MARKER.findall(markdown)
    if sorted(found) != sorted(expected):
        raise ValueError(f"{page.file.src_uri}: generated parts {found}, expected {list(expected)} (docs/hooks/reference.py)")
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)
