"""Renderings of a fit: the JSON of ``lorascale fit --json``, fit tables, and the Markdown/HTML
report with the papers' figures (μA Figs 2–5, LoRA-α Fig. 1b–c) drawn from stored results."""

from __future__ import annotations

import html
import re
from pathlib import Path

from ..rules import Finetune
from .fit import DEFAULT_FIT, FitReport, fit
from .records import Record

__all__ = ["fit_to_dict", "fit_tables", "write_report"]


def fit_to_dict(rep: FitReport) -> dict:
    """JSON-ready fit: per configuration η* per rank, ``slope``, ``slope_ci`` and ``predicted_slope``."""

    def rank_d(o) -> dict:
        return {"rank": o.rank, "lr": o.lr, "log2_lr": o.x, "log2_lr_grid": o.x_grid,
                "log2_lr_ci": list(o.ci) if o.ci else None, "best_value": rep.show(o.best_value),
                "vertex_value": rep.show(o.vertex_value), "refined": o.refined, "at_edge": o.at_edge,
                "gap": o.gap}

    return {
        "metric": rep.metric,
        "higher_is_better": rep.higher_is_better,
        "configs": [
            {"config": c.label, "alpha_mult": c.alpha_mult, "finetune": c.finetune, "init": c.init,
             "gamma_eff": c.gamma_eff, "eta_star": [rank_d(o) for o in c.ranks], "slope": c.slope,
             "slope_ci": list(c.slope_ci) if c.slope_ci else None, "slope_ci_method": c.slope_ci_method,
             "predicted_slope": c.predicted_slope, "slope_matches_prediction": c.slope_matches,
             "grid_step": c.grid_step, "spread": c.spread, "rank_invariant": c.rank_invariant,
             "n_seeds": c.n_seeds, "noisy": c.noisy, "counts": c.counts}
            for c in rep.configs
        ],
        "transfer_gaps": [
            {"lora_config": g.lora_config, "fft_config": g.fft_config, "fft_lr": 2.0**g.fft_log2_lr,
             "gaps_log2": [{"rank": r, "gap": x} for r, x in g.gaps], "mean_gap_log2": g.mean_gap,
             "within_one_step": g.within_one_step}
            for g in rep.gaps
        ],
        "paths": [
            {"config": p.config, "rank": p.rank, "path": p.path, "m_star": p.m_star, "log2_m_star": p.log2_m_star,
             "best_value": rep.show(p.best_value), "best_std": p.best_std, "vertex_value": rep.show(p.vertex_value),
             "at_edge": p.at_edge}
            for p in rep.paths
        ],
        "path_comparisons": [
            {"config": c.config, "rank": c.rank, "best_alpha_minus_eta": _gap(rep, c.best_gap),
             "best_alpha_minus_eta_ci": _gap_ci(rep, c.best_gap_ci), "log2_m_star_alpha_minus_eta": c.log2_m_gap,
             "log2_m_star_alpha_minus_eta_ci": list(c.log2_m_gap_ci) if c.log2_m_gap_ci else None, "n_seeds": c.n_seeds}
            for c in rep.path_comparisons
        ],
        "alpha_laws": [
            {"config": a.config, "lr": 2.0**a.log2_lr, "units": a.units,
             "alpha_star": [{"rank": o.rank, "alpha": 2.0**o.x, "log2_ci": list(o.ci) if o.ci else None,
                             "at_edge": o.at_edge, "gap": o.gap}
                            for o in a.optima],
             "p_free": {"C": a.c, "p": a.p, "p_ci": list(a.p_ci) if a.p_ci else None, "rms_log2": a.rms},
             "p_half": {"C": a.c_half, "C_ci": list(a.c_half_ci) if a.c_half_ci else None, "p": 0.5,
                        "rms_log2": a.rms_half}, "noisy": a.noisy}
            for a in rep.alpha_laws
        ],
        "counts": rep.counts,
        "notes": list(rep.notes),
    }


def fit_tables(rep: FitReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """The fit as (title, headers, rows) tables, shared by the terminal, Markdown and HTML."""
    t = []
    rows = [[c.label, _r(o.rank), f"{o.lr:.3g}", f"{o.x:.2f}", _ci(o.ci), f"{o.x_grid:g}", _v(rep, o.best_value),
             " ".join(w for w, flag in (("edge", o.at_edge), ("gap", o.gap)) if flag)] for c in rep.configs for o in c.ranks]
    if rows:  # a paths-only study has no learning-rate grid
        t.append((f"η* per configuration and rank ({rep.metric})",
                  ["config", "rank", "η*", "log2 η*", "95% CI", "grid", "best", ""], rows))
    rows = [[c.label, _f(c.slope), _ci(c.slope_ci), _f(c.predicted_slope), _yn(c.slope_matches),
             "" if c.spread is None else f"{c.spread:g}", _yn(c.rank_invariant), str(c.n_seeds) + (" (noisy)" if c.noisy else ""),
             c.slope_ci_method] for c in rep.configs if c.finetune == Finetune.LORA]
    if rows:
        t.append(("slope of log η* against log r (μA Table 1)",
                  ["config", "slope", "95% CI", "μA predicts", "in CI", "spread (log2)", "rank-invariant", "seeds", "CI from"], rows))
    if rep.gaps:
        rows = [[g.lora_config, g.fft_config, f"{2.0 ** g.fft_log2_lr:.3g}", f"{g.mean_gap:+.2f}",
                 " ".join(f"{r}:{x:+.2f}" for r, x in g.gaps), _yn(g.within_one_step)] for g in rep.gaps]
        t.append(("Init[B] with α = 1 against full finetuning (μA §4.2)",
                  ["LoRA config", "FFT", "FFT η*", "mean gap (log2)", "gap per rank", "within one step"], rows))
    if rep.paths:
        rows = [[p.config, str(p.rank), p.path, f"{p.m_star:.3g}", _v(rep, p.best_value),
                 "" if p.best_std is None else f"{p.best_std:.3g}", "edge" if p.at_edge else ""] for p in rep.paths]
        t.append(("LoRA-α scaling paths, eq. (2)", ["config", "rank", "path", "m*", "best", "std", ""], rows))
    if rep.path_comparisons:
        rows = [[c.config, str(c.rank), f"{_gap(rep, c.best_gap):+.4f}", _ci(gap_ci, 4),
                 _sign_verdict(gap_ci, rep.higher_is_better),
                 f"{c.log2_m_gap:+.2f}", _ci(c.log2_m_gap_ci), _sign_verdict(c.log2_m_gap_ci, True), str(c.n_seeds)]
                for c in rep.path_comparisons for gap_ci in [_gap_ci(rep, c.best_gap_ci)]]
        t.append(("α-path against η-path, α − η (LoRA-α Finding II)",
                  ["config", "rank", "best α − best η", "95% CI", "α-path better", "log2 m*α − log2 m*η", "95% CI",
                   "m*α larger", "seeds"], rows))
    if rep.alpha_laws:
        rows = [[a.config, f"{2.0 ** a.log2_lr:.3g}", " ".join(f"{o.rank}:{2.0 ** o.x:.3g}" for o in a.optima),
                 f"{a.c:.3g}", f"{a.p:.3f}", _ci(a.p_ci), f"{a.rms:.3f}", f"{a.c_half:.3g}",
                 "" if a.c_half_ci is None else f"[{a.c_half_ci[0]:.3g}, {a.c_half_ci[1]:.3g}]", f"{a.rms_half:.3f}"]
                for a in rep.alpha_laws]
        t.append(("α*(r) = C·r^p (LoRA-α footnote 1)",
                  ["config", "η", "α* per rank", "C", "p", "p 95% CI", "rms", "C (p = 0.5)", "C 95% CI", "rms (p = 0.5)"], rows))
    return t


def write_report(records: list[Record], out_dir: str | Path, study: str, n_boot: int = DEFAULT_FIT.bootstrap,
                 html_too: bool = True, pending: int = 0) -> Path:
    """Fit on the EMA loss, the held-out loss (when it is not already the eval metric) and the eval metric,
    each when stored; draw every figure; write report.md. ``pending``: points still queued or running.

    A figure the folder's previous report.md showed and this one does not draw (a configuration renamed or
    renumbered since) is deleted, so the folder holds this report's figures and no stale ones; no other
    file is touched but an earlier report.html when this one writes none."""
    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "report.md"
    earlier = _figures(md.read_text()) if md.is_file() else set()
    reps = {"ema": fit(records, "ema", n_boot, pending=pending)}
    evals = {r.outcome.eval_metric for r in records if r.outcome.eval_value is not None}
    if any(r.outcome.val_loss is not None for r in records) and not evals <= {"val_nll"}:
        reps["val_loss"] = fit(records, "val_loss", n_boot, pending=pending)  # for LM tasks val_nll is the held-out loss itself
    if evals:
        reps["eval"] = fit(records, "eval", n_boot, pending=pending)
    parts: list[tuple[str, object]] = [("h1", f"Sweep {study}"), ("p", _counts_line(reps["ema"]))]
    for tag, rep in reps.items():
        parts.append(("h2", f"Selected on {plots.metric_label(rep)}"))
        parts += [("p", n) for n in rep.notes]
        for title, headers, rows in fit_tables(rep):
            parts.append(("table", (title, headers, rows)))
        fft = next((c for c in rep.configs if c.finetune == Finetune.FULL), None)
        lora = [c for c in rep.configs if c.finetune != Finetune.FULL]
        if len(lora) > 1:  # μA Fig. 2's row of panels, then each configuration at full size
            png = plots.render_lr_panels(tuple(plots.lr_sweep_info(rep, c, fft) for c in lora), out / f"{tag}_lr_panels.png")
            parts.append(("img", ("every LoRA configuration side by side (μA Fig. 2's layout)", png.name)))
        for i, c in enumerate(rep.configs):
            png = plots.render_lr_sweep(plots.lr_sweep_info(rep, c, fft), out / f"{tag}_lr_{i}_{_slug(c.label)}.png")
            parts.append(("img", (c.label, png.name)))
        if rep.paths:
            png = plots.render_paths(plots.paths_info(rep), out / f"{tag}_paths.png")
            kinds = {p.path for p in rep.paths}
            caption = ("η-path against α-path" if kinds == {"eta", "alpha"} else
                       "the α-path" if kinds == {"alpha"} else "the η-path") + " (LoRA-α Fig. 1b)"
            parts.append(("img", (caption, png.name)))
        for i, law in enumerate(rep.alpha_laws):
            png = plots.render_alpha_law(plots.alpha_law_info(rep, law), out / f"{tag}_alpha_law_{i}.png")
            parts.append(("img", ("α* against r (LoRA-α Fig. 1c)", png.name)))
    parts.append(("h2", "EMA loss curves at each rank's best grid learning rate"))
    for i, c in enumerate(reps["ema"].configs):
        png = plots.render_curves(plots.curves_info(records, c), out / f"curves_{i}_{_slug(c.label)}.png")
        parts.append(("img", (c.label, png.name)))
    text = _markdown(parts)
    md.write_text(text)
    if html_too:
        (out / "report.html").write_text(_html(parts, study))
    else:  # an earlier report's page would show figures this one deletes or no longer matches
        (out / "report.html").unlink(missing_ok=True)
    for name in earlier - _figures(text):
        (out / name).unlink(missing_ok=True)
    return md


def _figures(markdown: str) -> set[str]:
    """The figure files a report.md shows: its images' names, each a file beside it (never a path)."""
    # greedy caption: configuration labels hold brackets (Init[A] α=1); the name is after the last "]("
    return set(re.findall(r"^!\[.*\]\(([^()/\\]+\.png)\)\s*$", markdown, flags=re.M))


def _counts_line(rep: FitReport) -> str:
    c = rep.counts
    return (f"{c['complete']} complete, {c['diverged']} diverged, {c['failed']} failed, "
            f"{c['interrupted']} interrupted runs.")


def _markdown(parts) -> str:
    lines = []
    for kind, v in parts:
        if kind == "h1":
            lines += [f"# {v}", ""]
        elif kind == "h2":
            lines += [f"## {v}", ""]
        elif kind == "p":
            lines += [str(v), ""]
        elif kind == "img":
            lines += [f"![{v[0]}]({v[1]})", ""]
        else:
            title, headers, rows = v
            lines += [f"**{title}**", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    return "\n".join(lines)


def _html(parts, study: str) -> str:
    e = html.escape
    body = []
    for kind, v in parts:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{e(v)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{e(v)}</p>")
        elif kind == "img":
            body.append(f'<figure><img src="{e(v[1])}" alt="{e(v[0])}" width="640"><figcaption>{e(v[0])}</figcaption></figure>')
        else:
            title, headers, rows = v
            head = "".join(f"<th>{e(h)}</th>" for h in headers)
            trs = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<h3>{e(title)}</h3><table><tr>{head}</tr>{trs}</table>")
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{e(study)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>"


def _slug(s: str) -> str:
    return "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in s).strip("_")[:40] or "config"


def _r(rank) -> str:
    return "FFT" if rank is None else str(rank)


def _f(x) -> str:
    return "" if x is None else f"{x:+.3f}"


def _ci(ci, digits: int = 2) -> str:
    return "" if not ci else f"[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def _gap(rep: FitReport, d: float) -> float:
    """A difference of scores in the metric's own units (accuracy was negated); never −0."""
    return (-d if rep.higher_is_better else d) + 0.0


def _gap_ci(rep: FitReport, ci) -> list[float] | None:
    return None if ci is None else sorted(_gap(rep, v) for v in ci)


def _sign_verdict(ci, positive_wins: bool) -> str:
    """yes / no where a 95% CI excludes 0, "CI spans 0" where it does not, blank without one."""
    if not ci:
        return ""
    if ci[0] > 0 or ci[1] < 0:
        return _yn((ci[0] > 0) == positive_wins)
    return "CI spans 0"


def _yn(b) -> str:
    return "" if b is None else ("yes" if b else "no")


def _v(rep: FitReport, v) -> str:
    s = rep.show(v)
    return "diverged" if s is None else f"{s:.4g}"
