"""Settings from the environment and a TOML config file, under the flags: flag > env > file > default.

A setting left off the command line is taken from its environment variable (``PTCRUN_`` and the
flag's words), else from the config file, else from its default. The config file is the first of:
``--config FILE``, ``$PTCRUN_CONFIG``, and the user's ``$XDG_CONFIG_HOME/ptcrun/config.toml``
(``~/.config/ptcrun/config.toml``); ``--config none`` (or ``PTCRUN_CONFIG=none``) reads none.
Prices add up across the sources, a model's price taken from the highest one that names it.

A file in the current folder is read only when named (``--config ptcrun.toml``): a folder may
come from anyone (a cloned repository, an unpacked archive), and its file could point the
planner at a server of its own, which would receive the user's API key and corpus, or name a
``scripted:FILE.py`` provider, which runs Python.

A bad value is refused before anything runs, with the source named ("PTCRUN_TOKEN_LIMIT='abc'",
"ptcrun.toml: [limits] token_limit"), as is a key the file does not know, so a misspelt setting
is never silently ignored. API keys are read by the providers from their own variables
(``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``), never from the file: a config file is often
committed to a repository.
"""

from __future__ import annotations

import argparse
import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._settings import SETTINGS, BadValue, Setting, parse_price, price_pair

__all__ = ["apply_config", "config_path"]

_SECTIONS = {"corpus", "limits", "requests", "prices"}
#: The chunk sizes exclude each other: the highest source that gives either one decides both.
_SIZES = ("chunk_tokens", "chunk_lines")


def config_path(given: str | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: ``--config``, else ``PTCRUN_CONFIG``, else the user's file when
    there is one; ``None`` for none (``none`` given, or no user file).

    Raises:
        ConfigError: a file named by ``--config`` or ``PTCRUN_CONFIG`` does not exist.
    """
    for value, source in ((given, "--config"), (environ.get("PTCRUN_CONFIG"), "PTCRUN_CONFIG")):
        if value is None or value == "":
            continue
        if value == "none":
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{source} {value!r} is not a file; pass the path of a TOML config file, or none "
                f"to read no config file."
            )
        return path
    home = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    user = Path(home) / "ptcrun" / "config.toml"
    return user if user.is_file() else None


def apply_config(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Fill each setting ``args`` left as ``None`` from the environment, the file or its default.

    Only the settings the subcommand has (``args`` has an attribute for) are filled. Sets
    ``args.prices`` (model → (input, output) USD per million tokens), ``args.config_file``,
    ``args.from_settings`` (the settings the subcommand has) and ``args.from_flags`` (those of
    them given as flags).

    Raises:
        ConfigError: a variable or a file value cannot be read, or the file is not TOML, holds a
            key that is not a setting, or gives both chunk sizes.
    """
    path = config_path(getattr(args, "config", None), environ)
    file = _read_file(path) if path is not None else {}
    args.config_file = str(path) if path is not None else None
    settings = [s for s in SETTINGS if hasattr(args, s.dest)]
    args.from_settings = frozenset(s.dest for s in settings)
    args.from_flags = frozenset(s.dest for s in settings if getattr(args, s.dest) is not None)
    sizes = [s for s in settings if s.dest in _SIZES]
    if sizes and all(getattr(args, s.dest) is None for s in sizes):
        from_env = {s.dest: _from_env(s, environ) for s in sizes}
        from_file = {s.dest: _from_file(s, file, path) for s in sizes}
        for source, values in (("the environment", from_env), (str(path), from_file)):
            given = {dest: value for dest, value in values.items() if value is not None}
            if len(given) == 2:
                raise ConfigError(
                    f"{source} gives both a chunk size in tokens and one in lines; give one "
                    f"(chunk_tokens or chunk_lines)."
                )
            if given:
                for dest, value in given.items():
                    setattr(args, dest, value)
                break
    for setting in settings:
        if setting.dest in _SIZES or getattr(args, setting.dest) is not None:
            continue
        value = _from_env(setting, environ)
        if value is None:
            value = _from_file(setting, file, path)
        setattr(args, setting.dest, setting.default if value is None else value)
    if hasattr(args, "price"):
        args.prices = _prices(args.price or [], environ, file, path)


def _from_env(setting: Setting, environ: Mapping[str, str]) -> Any:
    raw = environ.get(setting.env)
    if raw is None or raw == "":
        return None
    try:
        return setting.convert(raw)
    except BadValue as exc:
        raise ConfigError(
            f"{setting.env}={raw!r} is not valid: {setting.flag} {exc}; fix it or unset it."
        ) from None


def _from_file(setting: Setting, file: Mapping[str, Any], path: Path | None) -> Any:
    table = file.get(setting.section, {}) if setting.section else file
    if setting.key not in table:
        return None
    raw = table[setting.key]
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        kind = "true or false" if isinstance(raw, bool) else f"a TOML {type(raw).__name__}"
        raise ConfigError(
            f"{path}: {setting.where} is {kind}, not a value {setting.flag} takes; fix the file."
        )
    try:
        return setting.convert(str(raw))
    except BadValue as exc:
        raise ConfigError(
            f"{path}: {setting.where} = {raw!r} is not valid: {setting.flag} {exc}; fix the file."
        ) from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the file.") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    top = {s.key for s in SETTINGS if s.section is None}
    for key, value in data.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {key} must be a table, [{key}]; fix the file.")
            if key != "prices":
                known = {s.key for s in SETTINGS if s.section == key}
                for inner in value:
                    if inner not in known:
                        raise ConfigError(f"{path}: [{key}] {inner} is not a setting{_near(inner, known)}")
        elif key not in top:
            raise ConfigError(f"{path}: {key} is not a setting{_near(key, top | _SECTIONS)}")
    return data


def _near(key: str, known: set[str]) -> str:
    near = difflib.get_close_matches(key, sorted(known), n=1)
    return f"; did you mean {near[0]}?" if near else f"; the settings here are: {', '.join(sorted(known))}."


def _prices(
    given: list[str], environ: Mapping[str, str], file: Mapping[str, Any], path: Path | None
) -> dict[str, tuple[float, float]]:
    """Model → (input, output) USD per million tokens: the flags over ``PTCRUN_PRICE`` over the
    file's ``[prices]``, in that order from the last (the same provider may be priced under two
    names, ``openai:llama3`` and ``llama3``: the highest source wins)."""
    prices: dict[str, tuple[float, float]] = {}
    for model, pair in (file.get("prices") or {}).items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(
                f"{path}: [prices] {model!r} must be a pair [IN, OUT] of USD per million input and "
                f"output tokens, e.g. {model!r} = [0.2, 0.6]; fix the file."
            )
        try:
            prices[model] = price_pair(pair)  # the file comes first: the lowest source
        except BadValue as exc:
            raise ConfigError(f"{path}: [prices] {model!r} {exc}; fix the file.") from None
    for entry in (environ.get("PTCRUN_PRICE") or "").split():
        try:
            model, pair = parse_price(entry)
        except BadValue as exc:
            raise ConfigError(
                f"PTCRUN_PRICE holds {entry!r}, which {exc}; separate several with spaces."
            ) from None
        prices.pop(model, None)  # kept in order of precedence, the highest last
        prices[model] = pair
    for entry in given:
        try:
            model, pair = parse_price(entry)
        except BadValue as exc:
            raise ConfigError(f"--price {entry!r} {exc}.") from None
        prices.pop(model, None)
        prices[model] = pair
    return prices
