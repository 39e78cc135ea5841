"""The command table. Each command is a thin module in ``lorascale.commands`` over library functions."""

from __future__ import annotations

import argparse
import errno
import functools
import importlib
import logging
import sys

from .errors import ConfigError, ConfigErrors

# name -> module in lorascale.commands (hyphens become underscores); order is the order of `lorascale --help`.
COMMANDS = (
    "recommend",
    "transfer",
    "check",
    "train",
    "tune",
    "export",
    "demo",
    "diagnose",
    "coord-check",
    "repro",
    "sweep",
    "fit",
    "report",
)

EXIT_USAGE = 2
EXIT_FAILURE = 1
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # a device or quota full: the user's to fix, not a bug


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="lorascale", description="Principled LoRA hyperparameters through PEFT.",
                                     allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"lorascale {__version__}")
    # no abbreviations: `tune --lr` must reach tune's own "tune searches the rate" error, not argparse's
    # "ambiguous option: --lr could match --lr-fft, --lr-span" (and a flag added later cannot change what one means)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                parser_class=functools.partial(argparse.ArgumentParser, allow_abbrev=False))
    for name in COMMANDS:
        importlib.import_module(f".commands.{name.replace('-', '_')}", __package__).register(sub)
        sub.choices[name].set_defaults(parser=sub.choices[name])  # errors name this command's flags
    return parser


def main(argv: list[str] | None = None) -> int:
    from .commands.flags import describe
    from .interrupts import exit_code, stop_on_signals

    _quiet_libraries()
    _log_to_stderr()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        prog = _owner_of_unknown(parser, args, unknown, sys.argv[1:] if argv is None else argv)
        print(f"{prog}: error: unrecognized arguments: {' '.join(unknown)}; see `{prog} --help` for its flags",
              file=sys.stderr)
        return EXIT_USAGE
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with stop_on_signals():  # SIGTERM (schedulers) stops a command as Ctrl-C does
            return int(args.run(args) or 0)
    except KeyboardInterrupt as e:  # a command that records nothing on Ctrl-C/SIGTERM: no traceback
        print(f"lorascale {args.command}: interrupted", file=sys.stderr)
        return exit_code(e)
    except (ConfigErrors, ConfigError) as e:
        from_file = bool(getattr(args, "config", None))
        for err in getattr(e, "errors", [e]):
            print(f"lorascale {args.command}: error: {describe(err, args.parser, from_file)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `lorascale ... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.errno not in FULL_DISK:
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"lorascale {args.command}: error: no space left on the device{where}. Free some space, or write"
              " elsewhere (--out, --storage), then run the same command again", file=sys.stderr)
        return EXIT_FAILURE


def _owner_of_unknown(parser, args, unknown: list[str], argv: list[str]) -> str:
    """Whose flags the unknown arguments were meant as: the command's when they follow it, not the top level's
    `usage: lorascale [-h] [--version] COMMAND ...`; the top level's before it (`lorascale --bogus tune`)."""
    command = getattr(args, "command", None)
    at = [i for i, a in enumerate(argv) if a in unknown]
    ours = command is not None and command in argv and (not at or at[0] > argv.index(command))
    return args.parser.prog if ours else parser.prog


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a redirected stream, a test's capture)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def _log_to_stderr() -> None:
    """Library code logs to the "lorascale" logger; the CLI shows its warnings and info on stderr."""
    logger = logging.getLogger("lorascale")
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr(sys.stderr)
        handler.setFormatter(logging.Formatter("lorascale: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _quiet_libraries() -> None:
    """Library deprecation chatter is not for end users; our own messages go to stderr."""
    import os
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # the same in every process a command starts (sweep workers are spawned, not forked)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


if __name__ == "__main__":
    sys.exit(main())
