"""What a benchmark's runs cost in time, from what each run recorded (so a report re-read from finished
runs keeps it), and the sentence the reports print about it."""

from __future__ import annotations

__all__ = ["wall_seconds", "run_timing", "timing_text"]


def wall_seconds(results) -> tuple[float, int]:
    """The training time the runs recorded themselves, read back with them (what a benchmark cost, whether
    this call trained its runs or found them finished): a run alone its ``wall_time``; a pack (its members
    share a ``pack`` id, each counting from the pack's start) its members' largest, once. Also how many
    runs could not say: a summary written before ``pack`` was kept may be a member's. Unfinished runs
    (None) are neither."""
    seconds, untimed, packs = 0.0, 0, {}
    for r in (r for r in results if r is not None):
        wall = float(r.summary.get("wall_time") or 0.0)
        if "pack" not in r.summary:
            untimed += 1
        elif r.summary["pack"] is None:
            seconds += wall
        else:
            packs[r.summary["pack"]] = max(wall, packs.get(r.summary["pack"], 0.0))
    return seconds + sum(packs.values()), untimed


def run_timing(results) -> dict:
    """``runs`` (finished), ``run_seconds`` and ``runs_untimed`` (:func:`wall_seconds`) for a report."""
    done = [r for r in results if r is not None]
    seconds, untimed = wall_seconds(done)
    return {"runs": len(done), "run_seconds": round(seconds), "runs_untimed": untimed}


def timing_text(t: dict) -> str:
    """``run_timing``'s figures in words: "24 runs, 6343 s", "22 of 24 runs, 6343 s" or why not known."""
    n, untimed = t["runs"], t["runs_untimed"]
    if untimed == n:
        return f"{n} runs, time not known (they ran before runs recorded their pack)"
    return f"{f'{n - untimed} of {n}' if untimed else n} runs, {t['run_seconds']} s"
