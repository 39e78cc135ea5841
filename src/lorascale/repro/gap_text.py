"""The words the benchmark reports print about a gap's 95% confidence interval: Welch over seeds, and paired by seed."""

from __future__ import annotations

__all__ = ["gap_ci_text", "paired_ci_text"]


def gap_ci_text(ci, *, spell_out: bool = False) -> str:
    """", 95% CI [lo, hi]" of a gap, appended to a sentence that states the gap; "" without an interval.

    An interval of zero width (every seed of both arms agreed) claims nothing, so it reads "no spread".
    Short form (a comparison's verdict list): " ≠ 0" where the interval excludes 0. ``spell_out`` (a
    headline target): three decimals and, in words, whether the seeds can tell the two arms apart."""
    return _ci_text(ci, ", 95% CI ", ", no 95% CI (no spread over the seeds)", spell_out,
                    lambda spans: "Welch; " + ("spans 0: the seeds cannot tell them apart" if spans else "excludes 0"))


def paired_ci_text(ci, *, spell_out: bool = False) -> str:
    """"; paired by seed [lo, hi]" of a gap whose arms ran the same seeds (same batches, same held-out set);
    "" without an interval. Short form: " ≠ 0" where it excludes 0; ``spell_out``: three decimals and, in
    words, whether it spans 0. A zero-width interval (every seed's difference equal) reads "no spread"."""
    return _ci_text(ci, "; paired by seed ", "; paired by seed: no spread", spell_out,
                    lambda spans: "spans 0" if spans else "excludes 0")


def _ci_text(ci, lead: str, flat: str, spell_out: bool, words) -> str:
    """The shared form: ``lead`` + the bounds; ``flat`` for a zero-width interval; ``words(spans)`` in
    parentheses when spelled out, else " ≠ 0" where the interval excludes 0."""
    if ci is None:
        return ""
    lo, hi = ci
    if lo == hi:
        return flat
    spans = lo <= 0 <= hi
    if spell_out:
        return f"{lead}[{lo:+.3f}, {hi:+.3f}] ({words(spans)})"
    return f"{lead}[{lo:+.3g}, {hi:+.3g}]" + ("" if spans else " ≠ 0")
