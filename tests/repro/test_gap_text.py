from lorascale.repro.gap_text import gap_ci_text, paired_ci_text


def test_a_gap_without_spread_claims_no_interval():
    # both arms' seeds agreed exactly: a zero-width interval would "exclude 0" without evidence
    assert gap_ci_text([0.1, 0.1]) == ", no 95% CI (no spread over the seeds)"
    assert gap_ci_text([0.02, 0.02], spell_out=True) == ", no 95% CI (no spread over the seeds)"
    assert gap_ci_text(None) == "" and gap_ci_text(None, spell_out=True) == ""


def test_the_short_form_marks_an_interval_that_excludes_zero():
    assert gap_ci_text([0.05, 0.15]) == ", 95% CI [+0.05, +0.15] ≠ 0"
    assert gap_ci_text([-0.05, 0.15]) == ", 95% CI [-0.05, +0.15]"
    assert gap_ci_text([-0.15, -0.05]) == ", 95% CI [-0.15, -0.05] ≠ 0"
    assert gap_ci_text([0.0, 0.15]) == ", 95% CI [+0, +0.15]"  # touching 0 is not excluding it


def test_the_spelled_out_form_says_whether_the_seeds_tell_the_arms_apart():
    assert gap_ci_text([-0.1, 0.2], spell_out=True) == (
        ", 95% CI [-0.100, +0.200] (Welch; spans 0: the seeds cannot tell them apart)")
    assert gap_ci_text([0.1, 0.2], spell_out=True) == ", 95% CI [+0.100, +0.200] (Welch; excludes 0)"


def test_the_paired_interval_reads_like_the_welch_one():
    assert paired_ci_text(None) == "" and paired_ci_text([0.1, 0.1]) == "; paired by seed: no spread"
    assert paired_ci_text([0.05, 0.15]) == "; paired by seed [+0.05, +0.15] ≠ 0"
    assert paired_ci_text([-0.05, 0.15]) == "; paired by seed [-0.05, +0.15]"
    assert paired_ci_text([-0.035, 0.058], spell_out=True) == "; paired by seed [-0.035, +0.058] (spans 0)"
    assert paired_ci_text([0.01, 0.02], spell_out=True) == "; paired by seed [+0.010, +0.020] (excludes 0)"
