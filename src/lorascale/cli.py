"""The command table. Each command is a thin module in ``lorascale.commands`` over library functions."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import ConfigError, ConfigErrors

# name -> module in lorascale.commands; order is the order of `lorascale --help`.
COMMANDS = (
    "recommend",
    "transfer",
    "check",
    "train",
    "demo",
    "diagnose",
    "repro",
    "sweep",
    "fit",
    "report",
)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="lorascale", description="Principled LoRA hyperparameters through PEFT.")
    parser.add_argument("--version", action="version", version=f"lorascale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(f"{__package__}.commands."):
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .models import ModelError
    from .rules import RuleError

    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except ConfigErrors as e:
        for err in e.errors:
            print(f"lorascale {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, RuleError, ModelError) as e:
        print(f"lorascale {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `lorascale ... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _quiet_libraries() -> None:
    """Library deprecation chatter is not for end users; our own messages go to stderr."""
    import os
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


if __name__ == "__main__":
    sys.exit(main())
