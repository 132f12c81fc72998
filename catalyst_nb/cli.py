"""Headless runs of the same object the notebooks drive: ``catalyst-nb run|tune|sweep|serve-llm`` (or
``python -m catalyst_nb``).

``run`` builds one :class:`~catalyst_nb.experiment.Experiment` from a TOML file and/or flags and writes
its run folder (config, events, state after every unit, LLM cassette, summary, report); ``tune`` is
``run --method coop``; ``sweep`` runs a grid of such runs.  The default run needs nothing from the
network: the embedded model and the Fashion-MNIST subset that ship inside the package.  A folder that
holds a run is never overwritten unless ``--overwrite`` says so, ``--resume`` continues it exactly, and
mistakes in the arguments are reported as ``error: ...`` with exit status 2 before the model loads.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalyst-nb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    from catalyst_nb.experiment.cli import add_run_parser

    add_run_parser(sub)
    from catalyst_nb.sweeps.cli import add_sweep_parser

    add_sweep_parser(sub)
    from catalyst_nb.runs.approval_cli import add_approval_parsers

    add_approval_parsers(sub)
    serve = sub.add_parser("serve-llm", help="serve the embedded local LLM (OpenAI-compatible) until Ctrl-C",
                           add_help=False)
    serve.add_argument("server_args", nargs=argparse.REMAINDER, help="arguments of the server command (--help)")
    return parser


# The library's typed errors that a user causes and can fix (a bad argument, a damaged or busy folder, an
# unknown model, missing data): ``main`` prints them as ``error: ...`` with exit code 2.  Anything else is
# a bug and keeps its traceback.  Listed by module so that the error path imports nothing: an exception of
# a class whose module was never imported cannot have been raised.
_USER_ERRORS = {
    "catalyst_nb.runs.folder": ("RunFolderError",),
    "catalyst_nb.runs.lock": ("FolderBusyError",),
    "catalyst_nb.runs.preflight": ("RunInputError",),
    "catalyst_nb.state_io": ("StateFileError",),
    "catalyst_nb.llm.cassette": ("CassetteFileError",),
    "catalyst_nb.backbone": ("ModelNotFoundError", "WeightsUnavailableError", "WeightsIntegrityError"),
    "catalyst_nb.data.errors": ("DatasetNotFoundError", "CorruptImageError", "CorruptDataError"),
    "catalyst_nb.templates": ("TemplateError",),
    "catalyst_nb.sweeps.config": ("SweepConfigError",),
    "catalyst_nb.sweeps.folder": ("SweepFolderError",),
    "catalyst_nb.sweeps.ray_executor": ("RayAddressError",),
}


def user_errors() -> tuple[type[BaseException], ...]:
    """The classes of ``_USER_ERRORS`` whose modules are loaded (see there why only those)."""
    found: list[type[BaseException]] = []
    for module_name, names in _USER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None:
            found.extend(getattr(module, name) for name in names)
    return tuple(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args, parser)
    except user_errors() as exc:  # evaluated only when an exception arrives, so every loaded class counts
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command in ("run", "tune"):  # tune: run --method coop
        from catalyst_nb.experiment.cli import run_command

        return run_command(args, parser, print)
    if args.command in ("approve", "status"):
        from catalyst_nb.runs.approval_cli import approve_command, status_command

        return (approve_command if args.command == "approve" else status_command)(args, print)
    if args.command == "sweep":
        from catalyst_nb.sweeps.cli import run_sweep_command

        return run_sweep_command(args, print)
    if args.command == "serve-llm":
        from catalyst_nb.llm.server import main as serve_main

        return serve_main(args.server_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
