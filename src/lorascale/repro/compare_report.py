"""compare.md: methods × tasks, each cell the base point and the tuned point (mean ± std over seeds)."""

from __future__ import annotations

from pathlib import Path

from ..vocabulary import higher_is_better
from .gap_text import gap_ci_text, paired_ci_text
from .timing import timing_text

__all__ = ["compare_rows", "held_out_tables", "write_compare_md"]


def compare_rows(result: dict) -> list[list[str]]:
    """The table's cells: one row per method, one column per task; the base point only when no sweep ran."""
    swept = _swept(result)
    tasks = list(result["tasks"])
    methods = list(next(iter(result["tasks"].values()))["methods"]) if tasks else []
    rows = []
    for m in methods:
        row = [result["tasks"][tasks[0]]["methods"][m]["label"]]
        for t in tasks:
            r = result["tasks"][t]["methods"][m]
            tuned = r["tuned"]
            knob = "α" if r["sweeps"] == "alpha" else "η"
            row.append(f"{_pm(r['base'])} / {_pm(tuned)}* ({knob}×{2.0 ** tuned['log2_mult']:g})" if swept else _pm(r["base"]))
        rows.append(row)
    return rows


def held_out_tables(result: dict) -> list[str]:
    """Markdown: per task, every held-out metric its runs logged at each method's base point (e.g. the
    contrastive task's recall@1 next to its MRR), mean ± std over seeds. Empty for results stored before
    compare kept them."""
    out = []
    for v in result["tasks"].values():
        points = {m: r["base"].get("held_out") or {} for m, r in v["methods"].items()}
        names = sorted({k for p in points.values() for k in p})
        if not names:
            continue
        head = ["method"] + [f"{k} {'↑' if higher_is_better(k) else '↓'}" for k in names]
        out += ["", f"Every held-out metric at the base point, {v['label']}:", "",
                "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join([v["methods"][m]["label"]] + [_pm(p[k]) if k in p else "—" for k in names]) + " |"
                for m, p in points.items()]
    return out


def _swept(result: dict) -> bool:
    return any(x != 0 for x in result["request"]["sweep_log2"])


def write_compare_md(result: dict, path: str | Path) -> Path:
    req, tasks, swept = result["request"], result["tasks"], _swept(result)
    seeds = f"{req['seeds']} seed" + ("" if req["seeds"] == 1 else "s")
    head = ["method"] + [f"{v['label']}: {v['metric']} {'↑' if v['higher_is_better'] else '↓'}" for v in tasks.values()]
    lines = ["# LoRA-α's comparison (Table 1/2 protocol) at lorascale's scale", "",
             (f"Rank {req['rank']}, {seeds}, sweep ×2^{req['sweep_log2']} around each method's base point. "
              "Each cell: the held-out metric at the base learning rate / at the tuned multiplier (*: the best mean "
              "final EMA training loss over seeds), mean ± std over seeds." if swept else
              f"Rank {req['rank']}, {seeds}, every method at its base point only (no sweep ran, so no "
              "method is tuned). Each cell: the held-out metric, mean ± std over seeds."), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in compare_rows(result)]
    lines += held_out_tables(result)
    lines += ["", "## LoRA-α at the base rate against each " + ("tuned baseline" if swept else "baseline at its base rate"), "",
              "Each: the verdict, the gap (> 0: LoRA-α is better), the noise (the larger seed-std), and the gap's 95% CI"
              " over seeds ('≠ 0' where it excludes 0): Welch, which treats the seeds as independent, then paired by seed"
              " (every method runs the same seeds, batch order and held-out set, so the seed-to-seed swing they share"
              " cancels). The verdict reads the paired CI (Welch's where there is none): win or lose where it excludes 0,"
              " tie where it spans 0 within ± the noise, inconclusive where it spans 0 and reaches past the noise."
              + (" Both CIs ignore that a tuned point was picked on its seeds: a guide, not a test." if swept else ""), ""]
    for t, v in tasks.items():
        verdicts = ", ".join(f"{m}: {d['verdict']} ({_gap_text(d)}{_unfinished_text(d)})" for m, d in v["verdict"].items())
        lines.append(f"- **{v['label']}** (base lr {v['base_lr']:g}): {verdicts or 'LoRA-α not in this comparison'}")
    timing = ", ".join(f"{v['label']}: {timing_text(v)}" for v in tasks.values() if "run_seconds" in v)
    lines += ["", (f"The runs' own training time (read back with them): {timing}. " if timing else "")
              + f"This call: {result['seconds']} s.", ""]
    Path(path).write_text("\n".join(lines))
    return Path(path)


def _pm(p: dict) -> str:
    if p["mean"] is None:
        return "—"
    return f"{p['mean']:.4g} ± {p['std']:.2g}"


def _gap_text(d: dict) -> str:
    """"+0.012, noise 0.005, CI …" or, where one side has no finished seed, "no held-out value to compare"."""
    if d["gap"] is None:
        return "no held-out value to compare"
    return f"{d['gap']:+.3g}, noise {d['noise']:.2g}{gap_ci_text(d.get('ci95'))}{paired_ci_text(d.get('ci95_paired'))}"


def _unfinished_text(d: dict) -> str:
    """"; not finished: lora-alpha 1 seed" where a point had seeds that diverged (they decide the verdict)."""
    bad = {m: n for m, n in (d.get("unfinished") or {}).items() if n}
    return "; not finished: " + ", ".join(f"{m} {n} seed{'s' * (n > 1)}" for m, n in bad.items()) if bad else ""
