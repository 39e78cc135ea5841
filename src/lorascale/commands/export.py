"""lorascale export RUN [--merge]: write a run's adapter (portable) or the merged model to a folder."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run's adapter, or with --merge the model with the adapter merged in, to a folder")
    p.add_argument("run_dir", metavar="RUN", help="a run folder of `lorascale train` (or an adapter folder with lorascale.json)")
    p.add_argument("--out", default=None, help="output folder (default RUN/export, or RUN/merged with --merge)")
    p.add_argument("--merge", action="store_true", help="merge the adapter into the base weights (PEFT merge_and_unload)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..export import export_adapter

    out = export_adapter(args.run_dir, args.out, merge=args.merge)
    print(f"{'merged model' if args.merge else 'adapter'} -> {out}")
    return 0
