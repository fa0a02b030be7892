"""The settings a ``ptcrun`` command line can set, each with its flag, its variable and its key.

One table, :data:`SETTINGS`, says for every setting the flag that sets it, the environment
variable (``PTCRUN_`` and the flag's words: ``--token-limit`` is ``PTCRUN_TOKEN_LIMIT``), the
key in the config file (the table and the flag's words: ``[limits] token_limit``), how its text
is read and its default. The parser adds the flags from it, and ``_config`` reads the variables
and the file with it, so a setting can never have a flag and no variable, or the reverse.

Every ``Limits`` field has a flag (:data:`LIMIT_FLAGS`): any of them can be named by an error
message, and a message that names a setting must name something the user can set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from .._limits import MAX_DEPTH, Limits
from ..corpus._load import DEFAULT_CHUNK_TOKENS

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_PLANNER",
    "LIMIT_FLAGS",
    "PROVIDER_FLAGS",
    "SETTINGS",
    "BadValue",
    "Setting",
    "parse_price",
]

DEFAULT_PLANNER = "anthropic:claude-sonnet-4-6"
DEFAULT_OUT = "runs"


class BadValue(ValueError):
    """A setting's text that cannot be read; the message says what it must be."""


Convert = Callable[[str], Any]


def count(least: int, most: int | None = None, *, meaning: str = "") -> Convert:
    """A whole number of at least ``least`` (and at most ``most``); ``meaning`` follows the
    lower bound in the message (``" (no tool.agent)"``)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if most is not None and not least <= value <= most:
            raise BadValue(f"must be a whole number from {least}{meaning} to {most}")
        if value < least:
            raise BadValue(f"must be a whole number of at least {least}")
        return value

    return convert


def seconds(least: float, *, inclusive: bool, finite: bool = False) -> Convert:
    """Seconds above ``least`` (or at least it); ``inf`` means no limit unless ``finite``."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value >= least if inclusive else value > least) or (finite and math.isinf(value)):
            bound = f"at least {least:g}" if inclusive else f"more than {least:g}"
            raise BadValue(f"must be seconds, {bound}" + ("" if finite else " (inf for no limit)"))
        return value

    return convert


def choice(*values: str) -> Convert:
    def convert(text: str) -> str:
        if text not in values:
            raise BadValue(f"must be one of {', '.join(values)}")
        return text

    return convert


def text(value: str) -> str:
    if not value.strip():
        raise BadValue("must not be empty")
    return value


def turn_address(text: str) -> tuple[str, int]:
    """``exec --turn``: ``N`` (the run's turn N) or ``CALL/N`` (turn N of the sub-run the call
    ``CALL`` started, ``t1.c3/2``; ``t1.c3/t2.c1/1`` one level deeper), as ``(CALL, N)``."""
    call, slash, number = text.strip().rpartition("/")
    try:
        value = int(number)
    except ValueError:
        value = 0
    if value < 1 or (slash and not all(part.strip() for part in call.split("/"))):
        raise BadValue(
            "must be a turn number N, or CALL/N for turn N of the sub-run a tool.agent call "
            "started (t1.c3/2, as `ptcrun show` names the sub-run)"
        )
    return call, value


POSITIVE = count(1)
NON_NEGATIVE = count(0)
DURATION = seconds(0, inclusive=False)
WAIT = seconds(0, inclusive=True)


#: The ``Limits`` fields and their flags: field name → (flag, help). ``run`` and ``exec`` take
#: them all, ``run`` builds ``Limits`` from them, and ``in_cli_words`` spells errors with them.
LIMIT_FLAGS: dict[str, tuple[str, str]] = {
    "max_tokens": ("--token-limit", "tokens the run may spend, planner and workers together"),
    "max_turns": ("--max-turns", "planner turns"),
    "max_concurrency": ("--concurrency", "tool and worker calls in flight at once"),
    "call_timeout": ("--call-timeout", "seconds one tool or worker call may take"),
    "pmap_timeout": ("--pmap-timeout", "seconds one pmap may take, all its items together"),
    "turn_timeout": ("--turn-timeout", "seconds one turn may take: the planner's reply and its program"),
    "run_timeout": ("--run-timeout", "seconds the whole run may take"),
    "planner_max_tokens": ("--planner-max-tokens", "output tokens of one planner reply"),
    "worker_max_tokens": ("--worker-max-tokens", "output tokens of one worker reply"),
    "max_print_chars": ("--max-print-chars", "characters of printed output shown to the planner per turn"),
    "feedback_reserve_tokens": (
        "--feedback-reserve-tokens", "tokens kept for the feedback the planner reads after a program"
    ),
    "on_budget_exceeded": (
        "--on-budget-exceeded",
        "when the planner's next request does not fit: fail, or return_partial",
    ),
    "sandbox_memory_bytes": ("--sandbox-memory-bytes", "address space of the sandbox child, in bytes"),
    "sandbox_cpu_seconds": ("--sandbox-cpu-seconds", "CPU seconds one program may use"),
    "sandbox_output_bytes": ("--sandbox-output-bytes", "bytes one program may print"),
    "sandbox_threads": ("--sandbox-threads", "threads the sandbox child may run at once"),
    "max_pmap_items": ("--max-pmap-items", "items one pmap call may take"),
    "max_depth": ("--max-depth", "how deep tool.agent sub-runs may nest (0: no tool.agent)"),
}

#: How each limit's text is read; the ones not named are whole numbers of at least 1.
_LIMIT_KINDS: dict[str, tuple[Convert, str]] = {
    "call_timeout": (DURATION, "SECONDS"),
    "pmap_timeout": (DURATION, "SECONDS"),
    "turn_timeout": (DURATION, "SECONDS"),
    "run_timeout": (DURATION, "SECONDS"),
    "sandbox_cpu_seconds": (seconds(0, inclusive=False, finite=True), "SECONDS"),
    "feedback_reserve_tokens": (NON_NEGATIVE, "N"),
    # Bounded here too, so a bad PTCRUN_MAX_DEPTH or config value is named where it was set.
    "max_depth": (count(0, MAX_DEPTH, meaning=" (no tool.agent)"), "N"),
    "on_budget_exceeded": (choice("fail", "return_partial"), "POLICY"),
}

#: The settings of the HTTP providers (``AnthropicProvider``, ``OpenAICompatProvider``) that
#: ``run`` and ``exec`` set, for the planner and the worker alike: argument → (flag, help).
PROVIDER_FLAGS: dict[str, tuple[str, str]] = {
    "timeout": ("--request-timeout", "seconds one attempt of an LLM request may take"),
    "max_retries": ("--max-retries", "retries of a failed LLM request (rate limit, overload, 5xx, timeout)"),
    "max_retry_wait": ("--max-retry-wait", "seconds a busy server may ask to wait before a retry"),
}

_PROVIDER_KINDS: dict[str, tuple[Convert, str]] = {
    "timeout": (DURATION, "SECONDS"),
    "max_retries": (NON_NEGATIVE, "N"),
    "max_retry_wait": (WAIT, "SECONDS"),
}


@attrs.frozen
class Setting:
    """One setting: its flag, where a config file keeps it, how its text is read, its default.

    ``default`` is ``None`` for a setting whose default is the library's (a ``Limits`` field,
    a provider's timeout) or that has none (``--worker`` defaults to the planner).
    """

    dest: str
    flag: str
    section: str | None
    convert: Convert
    metavar: str
    help: str
    default: Any = None

    @property
    def key(self) -> str:
        """Its key in the config file: the flag's words, ``token_limit`` for ``--token-limit``."""
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        """Its environment variable: ``PTCRUN_TOKEN_LIMIT`` for ``--token-limit``."""
        return "PTCRUN_" + self.key.upper()

    @property
    def where(self) -> str:
        """Its place in the config file, for messages: ``[limits] token_limit``."""
        return f"[{self.section}] {self.key}" if self.section else self.key


def _settings() -> tuple[Setting, ...]:
    settings = [
        Setting("planner", "--planner", None, text, "PROVIDER", "the planner model", DEFAULT_PLANNER),
        Setting("worker", "--worker", None, text, "PROVIDER",
                "the model behind tool.worker (default: the planner)"),
        Setting("sub_planner", "--sub-planner", None, text, "PROVIDER",
                "the model that writes tool.agent's sub-run programs (default: the planner)"),
        Setting("out", "--out", None, text, "DIR", "where run folders are made and found", DEFAULT_OUT),
        Setting("chunk_tokens", "--chunk-tokens", "corpus", POSITIVE, "N",
                f"tokens per chunk (default {DEFAULT_CHUNK_TOKENS})"),
        Setting("chunk_lines", "--chunk-lines", "corpus", POSITIVE, "N",
                "lines per chunk, instead of tokens"),
        Setting("overlap", "--overlap", "corpus", NON_NEGATIVE, "N",
                "tokens (or lines) repeated between neighbouring chunks (default 0)"),
    ]
    defaults = {f.name: f.default for f in attrs.fields(Limits)}
    for field, (flag, help_text) in LIMIT_FLAGS.items():
        convert, metavar = _LIMIT_KINDS.get(field, (POSITIVE, "N"))
        default = defaults[field]
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        settings.append(Setting(field, flag, "limits", convert, metavar,
                                f"{help_text} (Limits.{field}, default {shown})"))
    for name, (flag, help_text) in PROVIDER_FLAGS.items():
        convert, metavar = _PROVIDER_KINDS[name]
        settings.append(Setting(name, flag, "requests", convert, metavar,
                                f"{help_text}; for HTTP planner and worker providers ({name}=)"))
    return tuple(settings)


#: Every setting that a flag, an environment variable and the config file can all give.
SETTINGS: tuple[Setting, ...] = _settings()


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """``MODEL=IN,OUT`` (USD per million input and output tokens) as ``(MODEL, (IN, OUT))``.

    Raises:
        BadValue: the text has another shape, or a price is not a number >= 0.
    """
    model, sep, prices = text.partition("=")
    parts = prices.split(",")
    if not sep or not model.strip() or len(parts) != 2:
        raise BadValue("must be MODEL=IN,OUT: USD per million input and output tokens, e.g. llama3=0.2,0.6")
    return model.strip(), price_pair(parts)


def price_pair(parts: list[Any]) -> tuple[float, float]:
    """Two prices (input, output) from text or numbers; each a finite number >= 0."""
    values = []
    for part in parts:
        try:
            value = float(part) if not isinstance(part, bool) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not (0 <= value < math.inf):
            shown = str(part).strip()
            raise BadValue(f"has a price {shown!r} that is not a number >= 0 (USD per million tokens)")
        values.append(value)
    return values[0], values[1]
