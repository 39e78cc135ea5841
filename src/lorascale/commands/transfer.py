"""lorascale transfer: μA learning-rate transfer across rank, width, and to full finetuning."""

from __future__ import annotations

from ..transfer import TransferRequest
from .common import print_json
from .flags import add_settings_args, given


def register(sub) -> None:
    p = sub.add_parser("transfer", help="predict the learning rate at another rank/width/config from a tuned one (μA)")
    add_settings_args(p, TransferRequest)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..transfer import predict_transfer

    out = predict_transfer(TransferRequest(**given(args, TransferRequest)))
    if args.json:
        print_json(out)
        return 0
    src, dst, exps = out["from"], out["to"], out["exponents"]
    at = lambda side: (f"r={side['rank']}, " if side["rank"] is not None else "") + f"n={side['width']}"  # noqa: E731
    print(f"{src['config']} at {at(src)}: η = {src['lr']:.4g}")
    print(f"{dst['config']} at {at(dst)}: η = {dst['lr']:.4g}   (η ∝ n^{exps['width']:g} · r^{exps['rank']:g})")
    return 0
