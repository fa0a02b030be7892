"""What every example shares: picking providers, the scripted planner, reading a worker's prompt.

Each example runs in two ways:

- **for real**: with ``ANTHROPIC_API_KEY`` set, a capable Claude model plans and a small fast
  one does the worker calls; ``--planner``/``--worker`` name any other provider
  (``anthropic:MODEL``, ``openai:MODEL@URL``, ``scripted:FILE``);
- **offline** (no key, or ``--offline``): a scripted planner replies with the programs kept in
  the example's ``programs/`` folder, one per turn (the programs a real planner writes for that
  task), and a rule-based worker does the task by rule after a seeded, simulated latency, so
  that the parallel speed-up is real.

The examples import this file by path (the folder ``examples/`` is not a package).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

try:
    import ptcrun
except ModuleNotFoundError:  # a checkout that is not installed: use the package in place
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import ptcrun

#: The planner and worker a real run uses when ANTHROPIC_API_KEY is set.
DEFAULT_PLANNER = "claude-sonnet-4-6"
DEFAULT_WORKER = "claude-haiku-4-5"
#: Seconds each offline worker call waits, drawn uniformly from this range (seeded).
DEFAULT_LATENCY = (0.5, 2.0)

OFFLINE_NOTICE = "running offline: scripted planner, rule-based worker with simulated latency"

Respond = Callable[[Any], str]


def load_module(path: str | os.PathLike[str]) -> ModuleType:
    """Import a Python file by path, under a name unique to its folder and stem.

    Example folders are not packages and several hold files with the same name (``run.py``),
    so importing them by bare name would let one example's module shadow another's.
    """
    path = Path(path).resolve()
    name = f"_example_{path.parent.name}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py path always has both
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # attrs and dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def number_lines(text: str) -> str:
    """Prefix each line with its number, as ``cat -n`` does: ``"    42| <line>"``.

    Chunks cross into the sandbox as plain strings, so numbers in the text are how a program
    (and a worker) says where something is; two overlapping chunks show the same number for a
    line they share.
    """
    return "".join(numbered_line(number, line) for number, line in enumerate(text.splitlines(), 1))


def numbered_line(number: int, line: str) -> str:
    """One line of :func:`number_lines`, with its line break."""
    return f"{number:>6}| {line}\n"


# --- the command line --------------------------------------------------------------------------


def add_provider_options(parser: argparse.ArgumentParser) -> None:
    """Add the options every example takes: providers, offline mode, latency, seed, transcripts."""
    group = parser.add_argument_group("providers")
    group.add_argument("--planner", metavar="SPEC", help=f"planner provider (default anthropic:{DEFAULT_PLANNER} when ANTHROPIC_API_KEY is set)")
    group.add_argument("--worker", metavar="SPEC", help=f"worker provider (default anthropic:{DEFAULT_WORKER} when ANTHROPIC_API_KEY is set)")
    group.add_argument("--offline", action="store_true", help="use the scripted planner and the rule-based worker even when a key is set")
    group.add_argument(
        "--latency",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        default=DEFAULT_LATENCY,
        help="seconds each offline worker call takes, drawn uniformly (default %(default)s)",
    )
    group.add_argument("--seed", type=int, default=7, help="seed of the data and the simulated latency (default 7)")
    group.add_argument("--transcripts", type=Path, default=Path("runs"), help="folder for run transcripts (default ./runs)")


def run_main(main: Callable[[], int]) -> int:
    """Run an example's ``main``; a ptcrun error (a bad provider, a missing key) ends it with
    its message and exit code instead of a traceback."""
    try:
        return main()
    except ptcrun.PtcrunError as exc:
        print(f"{Path(sys.argv[0]).parent.name}: {exc}", file=sys.stderr)
        return exc.exit_code


@attrs.frozen
class Providers:
    """The planner and worker of a run, and whether they are the offline stand-ins."""

    planner: Any
    worker: Any
    offline_planner: bool
    offline_worker: bool

    @property
    def offline(self) -> bool:
        return self.offline_planner and self.offline_worker

    def describe(self) -> str:
        if self.offline:
            return OFFLINE_NOTICE
        planner = "scripted planner" if self.offline_planner else self.planner.name
        worker = "rule-based worker (simulated latency)" if self.offline_worker else self.worker.name
        return f"running with planner {planner}, worker {worker}"


def providers_from_args(args: argparse.Namespace, *, programs: Path, respond: Respond) -> Providers:
    """``choose_providers`` with the options ``add_provider_options`` put on ``args``."""
    return choose_providers(
        programs=programs,
        respond=respond,
        planner=args.planner,
        worker=args.worker,
        offline=args.offline,
        latency=tuple(args.latency),
        seed=args.seed,
    )


def choose_providers(
    *,
    programs: Path,
    respond: Respond,
    planner: str | None = None,
    worker: str | None = None,
    offline: bool = False,
    latency: float | tuple[float, float] = DEFAULT_LATENCY,
    seed: int = 7,
) -> Providers:
    """Pick the planner and the worker.

    A provider named by ``planner``/``worker`` is always used. Otherwise, with
    ``ANTHROPIC_API_KEY`` set and ``offline`` false, Claude fills the role; else the offline
    stand-in does: the scripted planner replaying ``programs``, or the rule-based worker
    ``respond`` behind a latency drawn from ``latency`` with ``seed``.
    """
    from ptcrun.runtime.providers._spec import parse_provider

    real = bool(os.environ.get("ANTHROPIC_API_KEY")) and not offline
    if planner is not None:
        planner_provider, offline_planner = parse_provider(planner), False
    elif real:
        planner_provider, offline_planner = ptcrun.AnthropicProvider(DEFAULT_PLANNER), False
    else:
        planner_provider, offline_planner = scripted_planner(programs), True
    if worker is not None:
        worker_provider, offline_worker = parse_provider(worker), False
    elif real:
        worker_provider, offline_worker = ptcrun.AnthropicProvider(DEFAULT_WORKER), False
    else:
        worker_provider = ptcrun.ScriptedProvider(respond, latency=latency, seed=seed, name="rules")
        offline_worker = True
    return Providers(planner_provider, worker_provider, offline_planner, offline_worker)


def offline_providers(example: Path, *, latency: float | tuple[float, float], seed: int) -> Providers:
    """The offline stand-ins of the example in folder ``example``, key or no key: the scripted
    planner replaying its ``programs/`` and the rule-based worker of its ``worker_rules.py``."""
    worker_rules = load_module(example / "worker_rules.py")
    return choose_providers(
        programs=example / "programs", respond=worker_rules.respond, offline=True, latency=latency, seed=seed
    )


# --- the scripted planner ----------------------------------------------------------------------

_TURN_FILE = re.compile(r"turn(\d+)\.py$")


def planner_replies(programs: Path) -> list[str]:
    """The scripted planner's replies: each ``programs/turnN.py`` in a ```python fence, in order."""
    files = sorted(
        (int(m.group(1)), path)
        for path in programs.glob("turn*.py")
        if (m := _TURN_FILE.search(path.name))
    )
    if not files:
        raise ptcrun.errors.ConfigError(f"no programs found in {programs}; expected turn1.py, turn2.py, ...")
    return [f"```python\n{_program_text(path)}\n```" for _, path in files]


def _program_text(path: Path) -> str:
    # The files carry a lint pragma for the repository's checks; the planner's reply does not.
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("# ruff:")).strip()


def scripted_planner(programs: Path) -> Any:
    """A planner that replies with the example's programs, one per turn."""
    return ptcrun.ScriptedProvider(planner_replies(programs), name="scripted-planner")


# --- the worker's side -------------------------------------------------------------------------


@attrs.frozen
class WorkerPrompt:
    """What a worker call asked: the instruction, the text, and the JSON Schema if any."""

    instruction: str
    text: str
    schema: dict | None


def read_worker_prompt(request: Any) -> WorkerPrompt:
    """Take a worker request apart (see ``ptcrun/prompts/worker_request.md``).

    The first message is the whole request; a repair request after a bad answer comes later
    and repeats nothing, so the first message is the one to read.
    """
    prompt = request.messages[0].content
    head, _, rest = prompt.partition("\n<text>\n")
    text = rest[: rest.rfind("\n</text>")] if "\n</text>" in rest else rest
    head = head.removeprefix("## Instruction\n\n")
    head = head[: head.rfind("## Text")] if "## Text" in head else head
    schema = None
    marker = "JSON Schema:\n"
    if marker in head:
        head, _, schema_text = head.partition(marker)
        head = head[: head.rfind("\n\n")] if "\n\n" in head else head
        try:
            schema = json.loads(schema_text.strip())
        except json.JSONDecodeError:
            schema = None
    return WorkerPrompt(instruction=head.strip(), text=text, schema=schema)


# --- reading a run -----------------------------------------------------------------------------


class EventLog:
    """An observer that keeps every event of a run, with helpers to read the fan-outs.

    Pass it in ``Runtime(observers=[log])``.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def fanouts(self) -> list[dict[str, Any]]:
        """One record per pmap/pcalls: ``span``, ``total`` items, ``concurrency`` and wall ``seconds``."""
        started = {e["span"]: e for e in self.of_type("pmap.start")}
        out = []
        for end in self.of_type("pmap.end"):
            start = started.get(end["span"])
            if start is not None:
                out.append(
                    {
                        "span": end["span"],
                        "total": start.get("total"),
                        "concurrency": start.get("concurrency"),
                        "seconds": end["ts"] - start["ts"],
                        "failed": end.get("failed", 0),
                    }
                )
        return out

    def call_seconds(self, tool: str = "worker", within: str | None = None) -> list[float]:
        """Wall seconds of each finished call of ``tool`` (only those under span ``within``)."""
        return [
            e["seconds"]
            for e in self.of_type("call.end")
            if e.get("tool") == tool and (within is None or _under(e, within))
        ]

    def llm_seconds(self, role: str = "worker") -> list[float]:
        """Seconds each finished LLM request of ``role`` took, from send to reply."""
        return [e["seconds"] for e in self.of_type("llm.end") if e.get("role") == role and e.get("status") == "ok"]

    def llm_seconds_within(self, span: str, role: str = "worker") -> list[float]:
        """Seconds of each LLM request of ``role`` made by a tool call under ``span`` (a pmap's)."""
        calls = {e["span"] for e in self.of_type("call.start") if _under(e, span)}
        return [
            e["seconds"]
            for e in self.of_type("llm.end")
            if e.get("role") == role and e.get("status") == "ok" and e.get("parent") in calls
        ]

    def peak_llm(self, role: str = "worker") -> int:
        """The most LLM requests of ``role`` in flight at the same moment.

        Counted from ``llm.start``/``llm.end``, which a request emits once it holds its slot of
        ``Limits.max_concurrency``; a tool call's ``call.start`` comes before it waits for one.
        """
        live = peak = 0
        for event in self.events:
            if event.get("role") != role:
                continue
            if event["type"] == "llm.start":
                live += 1
                peak = max(peak, live)
            elif event["type"] == "llm.end":
                live -= 1
        return peak


def _under(event: dict[str, Any], span: str) -> bool:
    parent = event.get("parent") or ""
    return parent == span or parent.startswith(span + ".")


def usage_lines(result: Any) -> list[str]:
    """How much the run spent, for printing."""
    usage = result.usage
    lines = [
        (
            f"planner: {usage.planner_tokens:,} tokens ({usage.planner_input_tokens:,} in, "
            f"{usage.planner_output_tokens:,} out) over {len(result.turns)} turns"
        ),
        (
            f"workers: {usage.worker_tokens:,} tokens ({usage.worker_input_tokens:,} in, "
            f"{usage.worker_output_tokens:,} out) in {usage.worker_calls:,} calls"
        ),
        f"wall time: {result.seconds:.1f} s",
    ]
    if usage.cost:
        lines.append(f"cost: ${usage.cost:.4f}")
    return lines


def transcript_lines(result: Any) -> list[str]:
    """Where the transcript is and how to look at it; writes the HTML timeline when available."""
    if result.transcript is None:
        return []
    path = Path(result.transcript)
    lines = [f"transcript: {path}", f"timeline:   ptcrun view {path}"]
    html = write_timeline(path)
    if html is not None:
        lines.append(f"html:       {html}")
    return lines


def write_timeline(transcript: Path) -> Path | None:
    """Write the run's HTML timeline beside its transcript (what ``ptcrun view`` writes)."""
    try:
        from ptcrun.transcript._html import write_html
    except ImportError:  # a ptcrun without the timeline page
        return None
    try:
        return write_html(ptcrun.Transcript.load(transcript))
    except ptcrun.PtcrunError as exc:  # the page is a convenience: never fail the example on it
        print(f"(could not write the HTML timeline: {exc})")
        return None


def ideal_seconds(calls: int, concurrency: int, mean_latency: float) -> float:
    """The fan-out's floor: ``ceil(calls / concurrency)`` waves of the mean latency."""
    return math.ceil(calls / max(concurrency, 1)) * mean_latency


def print_block(title: str, lines: Iterable[str]) -> None:
    print(f"\n== {title} ==")
    for line in lines:
        print(f"  {line}")


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
