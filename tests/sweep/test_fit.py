"""The fit recovers known optima, slopes, the FFT gap, path optima and α*(r) = C·r^p.

The synthetic objective (sweep_fakes) is an exact parabola in log2 η (and log2 α) around known
optima, so the three-point refinement recovers them to float precision: those tolerances are 1e-9.
"""

import math
import random
from dataclasses import replace

import pytest
import sweep_fakes as F

from lorascale.sweep.fit import fit, score
from lorascale.sweep.records import Outcome, PointCoords, Record
from lorascale.sweep.report import fit_to_dict
from lorascale.sweep.storage import SweepStore

EXACT = 1e-9  # exact parabolas: only float rounding separates the fit from the truth


@pytest.fixture(scope="module")
def stored(synthetic_study):
    url, name, spec = synthetic_study
    return SweepStore.open(url, name).records(), spec


def by_label(rep):
    return {c.label: c for c in rep.configs}


def test_eta_star_per_rank_and_slopes_match_the_truth(stored):
    records, spec = stored
    rep = fit(records, "ema", n_boot=200)
    cfgs = by_label(rep)
    assert set(cfgs) == {"A1", "A1/r", "B1", "FFT", "LoRA-α paths"}
    for label, slope in (("A1", -0.5), ("A1/r", 0.0), ("B1", 0.0)):
        c = cfgs[label]
        truth = {r: F.true_x_star(next(p.train for p in spec.points if p.label == label and p.rank == r)) for r in (4, 16, 64)}
        assert {o.rank: o.x for o in c.ranks} == pytest.approx(truth, abs=EXACT)
        assert c.slope == pytest.approx(slope, abs=EXACT)
        assert c.predicted_slope == slope and c.slope_matches  # both seeds agree: the CI is the point itself
        assert c.slope_ci == pytest.approx((slope, slope), abs=EXACT)
        assert c.n_seeds == 2 and not c.noisy
    assert cfgs["A1"].rank_invariant is False and cfgs["A1"].spread == 2.0  # r 4 → 64: two grid steps
    assert cfgs["A1/r"].rank_invariant and cfgs["B1"].rank_invariant
    (fft,) = cfgs["FFT"].ranks
    assert fft.rank is None and fft.x == pytest.approx(F.X_FFT, abs=EXACT)


def test_init_b_transfers_to_fft(stored):
    rep = fit(stored[0], "ema", n_boot=0)
    (gap,) = rep.gaps
    assert (gap.lora_config, gap.fft_config) == ("B1", "FFT")
    assert gap.mean_gap == pytest.approx(0.0, abs=EXACT) and gap.within_one_step


def test_diverged_points_are_counted_and_score_inf(stored):
    records, spec = stored
    rep = fit(records, "ema", n_boot=0)
    lr_points = [p for p in spec.points if not p.paths]
    expected = sum(math.log2(p.train.lr) - F.true_x_star(p.train) >= 3 for p in lr_points)
    assert expected > 0 and rep.counts["diverged"] == expected
    assert any("diverged" in n for n in rep.notes)
    a64 = next(o for o in by_label(rep)["A1"].ranks if o.rank == 64)
    diverged_x = [p.x for p in a64.points if p.mean == math.inf]
    assert diverged_x == [-8.0, -7.0] and all(p.n_diverged == 2 for p in a64.points if p.mean == math.inf)


def test_lora_alpha_paths_and_alpha_law(stored):
    rep = fit(stored[0], "ema", n_boot=0)
    paths = {(p.rank, p.path): p for p in rep.paths}
    for r in (4, 16, 64):
        assert paths[(r, "eta")].m_star == pytest.approx(2.0, rel=EXACT)  # X_ETA = log2 η_FFT + 1
        a_star = F.C_TRUE * r**F.P_TRUE
        assert paths[(r, "alpha")].m_star == pytest.approx(a_star / 16, rel=EXACT)
    (law,) = rep.alpha_laws
    assert law.units == "lora_alpha" and law.log2_lr == pytest.approx(math.log2(2e-4), abs=EXACT)
    assert (law.c, law.p, law.rms) == pytest.approx((F.C_TRUE, F.P_TRUE, 0.0), abs=EXACT)
    # p = 0.5: log2 C = mean(log2 α* − 0.5·log2 r) = log2 8 + 0.25·mean(log2 r)
    assert law.c_half == pytest.approx(8.0 * 2 ** (0.25 * (2 + 4 + 6) / 3), rel=EXACT)
    assert law.noisy  # the paths ran one seed


def test_base_point_joins_every_path_whatever_it_was_stored_with(stored):
    """A study extended by the η-path holds its base runs (m = 1) as α-path points only; the η-path fit
    must still start there, and equal the fit of a study that ran both paths from the start."""
    records = stored[0]
    alpha_only = [replace(r, point=replace(r.point, paths=tuple(p for p in r.point.paths if p[0] == "alpha") or ()))
                  if ("eta", 1.0) in r.point.paths else r for r in records]
    stripped = [r for r in alpha_only if r.point.paths and all(p[0] == "alpha" for p in r.point.paths)]
    assert any(("alpha", 1.0) in r.point.paths for r in stripped)  # the strip took effect
    full = {(p.rank, p.path): p for p in fit(records, "ema", n_boot=0).paths}
    extended = {(p.rank, p.path): p for p in fit(alpha_only, "ema", n_boot=0).paths}
    assert extended == full
    assert all(0.0 in [p.x for p in extended[(r, "eta")].points] for r in (4, 16, 64))


def test_path_comparison_matches_the_hand_derived_gaps(stored):
    """Finding II on the synthetic objective L = 1 + 0.05·(log2 α − log2 α*)² + 0.08·(x − X_ETA)², α* = 8·r^0.75,
    base (η_FFT = 2e-4, α₀ = 16), m = 2^-2 … 2^5. η-path: α = 16, best at m = 2 (x = X_ETA): 1 + 0.05·(4 − log2 α*)².
    α-path: x = X_ETA − 1 (+0.08), best at the grid m nearest α*/16: log2 α* = 4.5, 6, 7.5 puts it 0.5, 0, 0.5
    octaves off (+0.0125, 0, +0.0125). So best α − best η = +0.08, −0.12, −0.52 and log2 m*α − log2 m*η
    (refined, exact on a parabola) = 0.5 − 1, 2 − 1, 3.5 − 1."""
    comps = {c.rank: c for c in fit(stored[0], "ema", n_boot=0).path_comparisons}
    assert sorted(comps) == [4, 16, 64]
    for r, gap, m_gap in ((4, 0.08, -0.5), (16, -0.12, 1.0), (64, -0.52, 2.5)):
        assert comps[r].best_gap == pytest.approx(gap, abs=EXACT)
        assert comps[r].log2_m_gap == pytest.approx(m_gap, abs=EXACT)
        assert comps[r].n_seeds == 1 and comps[r].best_gap_ci is None and comps[r].log2_m_gap_ci is None


def test_path_comparison_ci_is_the_paired_t_interval_over_seeds():
    """With the optimum at the same grid point in every resample, best α − best η of a resample is the mean of
    the drawn seeds' paired differences d_s, and the exact bootstrap's interval is Student's t-interval of d
    (scipy). Each seed shifts a path by a constant, so the refined m* never moves: its CI is the point."""
    from scipy import stats as st

    shift = {"alpha": (0.00, 0.03, -0.01), "eta": (0.02, 0.00, 0.05)}
    out = []
    for seed in range(3):
        for path, x_star in (("alpha", 3.0), ("eta", 1.0)):
            for k in range(1, 6):  # m = 2 … 32; no base run, so each path is one parabola
                v = (0.9 if path == "alpha" else 1.0) + 0.05 * (k - x_star) ** 2 + shift[path][seed]
                out.append(Record(PointCoords(key=f"{seed}{path}{k}", config="P", rank=8, seed=seed,
                                              log2_lr=-13.0 + (k if path == "eta" else 0), paths=((path, 2.0**k),),
                                              alpha_mult=2.0**k if path == "alpha" else 1.0),
                                  Outcome("complete", v)))
    (c,) = fit(out, "ema", n_boot=1000).path_comparisons
    d = [0.9 + shift["alpha"][s] - 1.0 - shift["eta"][s] for s in range(3)]
    mean, sem = sum(d) / 3, st.sem(d)
    assert c.best_gap == pytest.approx(mean, abs=EXACT)
    assert c.best_gap_ci == pytest.approx(st.t.interval(0.95, 2, loc=mean, scale=sem), abs=1e-9)
    assert c.log2_m_gap == pytest.approx(2.0, abs=EXACT) and c.log2_m_gap_ci == pytest.approx((2.0, 2.0), abs=EXACT)
    from lorascale.sweep.report import fit_tables  # d = −0.12, −0.07, −0.16: the CI lies below 0, the α-path wins

    (rows,) = [rows for title, _, rows in fit_tables(fit(out, "ema", n_boot=1000)) if "Finding II" in title]
    assert rows[0][4] == "yes" and rows[0][7] == "yes"


def test_eval_metric_is_fitted_separately(stored):
    rep = fit(stored[0], "eval", n_boot=0)
    assert rep.metric == "val_nll" and not rep.higher_is_better
    assert by_label(rep)["A1"].slope == pytest.approx(-0.5, abs=EXACT)  # val_nll = loss + 0.1: same optima


# ---- pure: records in memory ----------------------------------------------------------------


def rec(key, config, rank, log2_lr, seed, status, ema_loss=None, eval_metric=None, eval_value=None, predicted_slope=None):
    return Record(PointCoords(key=key, config=config, rank=rank, log2_lr=log2_lr, seed=seed, predicted_slope=predicted_slope),
                  Outcome(status, ema_loss, eval_metric, eval_value))


def records(config="A", seeds=(0,), noise=0.0, slope=-0.5, ranks=(4, 16, 64), xs=range(-14, -5), metric=None, rng_seed=7):
    rng = random.Random(rng_seed)
    out = []
    for s in seeds:
        for r in ranks:
            x_star = -8 + slope * math.log2(r)
            for x in xs:
                v = 1.0 + 0.05 * (x - x_star) ** 2 + noise * rng.gauss(0, 1)
                out.append(rec(key=f"{s}{r}{x}", config=config, rank=r, log2_lr=float(x), seed=s, status="complete",
                               ema_loss=v, eval_metric=metric, eval_value=None if metric is None else 1 - v,
                               predicted_slope=slope))
    return out


def test_single_seed_is_flagged_noisy_with_an_ols_interval():
    rep = fit(records(noise=0.003), n_boot=200)
    (c,) = rep.configs
    assert c.noisy and c.n_seeds == 1 and "OLS" in c.slope_ci_method
    assert c.slope_ci[0] < -0.5 < c.slope_ci[1]
    # the interval itself, independently: scipy's least squares of log2 η* on log2 r, ± t(0.975, n − 2)·stderr
    from scipy import stats as st

    ols = st.linregress([2.0, 4.0, 6.0], [o.x for o in c.ranks])
    half = st.t.ppf(0.975, 1) * ols.stderr
    assert c.slope == pytest.approx(ols.slope, abs=1e-12)  # one least-squares solve each: rounding only
    assert c.slope_ci == pytest.approx((ols.slope - half, ols.slope + half), rel=1e-9)
    assert any(n.startswith("single-seed fits are noisy:") for n in rep.notes)  # all single-seed: no list


def test_the_single_seed_note_names_only_the_single_seed_configurations():
    """A study where only one configuration has one seed (FFT run once beside multi-seed LoRA) says which."""
    rep = fit(records(config="Init[A]", seeds=range(2), noise=0.003) + records(config="FFT", noise=0.003), n_boot=50)
    (note,) = [n for n in rep.notes if "single-seed" in n]
    assert note.startswith("single-seed fits are noisy (FFT; the rest have more seeds):")


def test_bootstrap_interval_covers_the_true_slope_at_its_nominal_rate():
    """Coverage over 40 synthetic sweeps with 8 seeds each (nominal 95%; this draw gives 37). A true
    coverage of 0.95 gives ≥ 34 hits with probability 0.997, one of 0.90 only with 0.90."""
    hits = 0
    for k in range(40):
        (c,) = fit(records(seeds=range(8), noise=0.01, rng_seed=k), n_boot=200, seed=k).configs
        hits += c.slope_ci[0] <= -0.5 <= c.slope_ci[1]
        assert c.slope_ci[1] - c.slope_ci[0] < 0.2  # noise 0.01 against curvature 0.05/step²: η* moves ≪ a step
        assert c.slope_ci_method == "bootstrap over 8 seeds"
    assert hits >= 34


def test_a_configurations_interval_does_not_move_when_another_joins_the_study():
    """Each configuration resamples its own seeded stream: a study extended with a new configuration
    (``--extend-study``) re-renders the old configurations' CIs digit for digit. 5 seeds: 5^5 resamples
    exceed n_boot, so they are drawn at random (up to 4 seeds every resample is taken: test_stats)."""
    old = records(config="Init[B]", seeds=range(5), noise=0.02, rng_seed=1)
    new = records(config="Init[A] α=1/r", seeds=range(5), noise=0.02, slope=0.0, rng_seed=2)  # sorts first
    alone = by_label(fit(old, n_boot=200))["Init[B]"]
    both = by_label(fit(new + old, n_boot=200))["Init[B]"]
    assert both.slope_ci == alone.slope_ci  # exactly: same stream, same resamples
    assert [o.ci for o in both.ranks] == [o.ci for o in alone.ranks]
    assert fit(old, n_boot=200, seed=1).configs[0].slope_ci != alone.slope_ci  # the seed still counts


@pytest.mark.parametrize("metric", ["val_accuracy", "val_mrr", "val_reward"])  # classification; retrieval; rlvr
def test_accuracy_and_reward_are_maximised(metric):
    rep = fit(records(metric=metric), "eval", n_boot=0)
    (c,) = rep.configs
    assert rep.higher_is_better and rep.metric == metric
    assert c.slope == pytest.approx(-0.5, abs=EXACT)
    assert rep.show(c.ranks[0].best_value) == pytest.approx(0.0, abs=EXACT)  # accuracy 1 − loss at the optimum (loss 1)


def test_failed_runs_are_excluded_with_a_count_and_edges_are_flagged():
    recs = records(xs=range(-9, -5))  # r = 64's optimum −11 lies left of the grid
    recs.append(rec("f", "A", 4, -20.0, 0, "failed"))
    rep = fit(recs, n_boot=0)
    assert rep.counts["failed"] == 1
    assert any("1 failed" in n for n in rep.notes) and any("edge" in n for n in rep.notes)
    o64 = next(o for o in rep.configs[0].ranks if o.rank == 64)
    assert o64.at_edge and not o64.refined and o64.x == -9.0


def test_score_conventions():
    r = rec("k", "A", 4, -10.0, 0, "complete", ema_loss=2.0, eval_metric="val_accuracy", eval_value=0.8)
    assert score(r, "ema") == 2.0 and score(r, "eval") == -0.8
    for metric, sign in (("val_mrr", -1), ("val_recall_at_1", -1), ("val_nll", 1)):
        assert score(replace(r, outcome=replace(r.outcome, eval_metric=metric)), "eval") == sign * 0.8
    assert score(replace(r, outcome=replace(r.outcome, status="diverged")), "ema") == math.inf
    nan = replace(r, outcome=replace(r.outcome, final_ema_loss=math.nan))
    assert score(nan, "ema") == math.inf  # a "complete" NaN diverged
    assert score(replace(r, outcome=replace(r.outcome, final_ema_loss=None)), "ema") == math.inf  # stored non-finite: null
    assert score(replace(r, outcome=replace(r.outcome, status="interrupted")), "ema") is None


def test_held_out_loss_is_a_third_selection_with_its_own_optima():
    """μA selects on the EMA training loss; issue #15 also asks for the fixed held-out NLL. Here the held-out
    parabola sits one log2 step right of the training one (x* + 1), so its optima move by exactly +1 while
    the rank slope stays −½; accuracy (the eval metric) is untouched by the choice."""
    recs = [replace(r, outcome=replace(r.outcome, val_loss=1.0 + 0.05 * (r.point.log2_lr - (-8 + 1 - 0.5 * math.log2(r.point.rank))) ** 2))
            for r in records(metric="val_accuracy")]
    ema, held_out = fit(recs, "ema", n_boot=0), fit(recs, "val_loss", n_boot=0)
    assert held_out.metric == "val_loss" and not held_out.higher_is_better
    for o_ema, o_val in zip(ema.configs[0].ranks, held_out.configs[0].ranks):
        assert o_val.x - o_ema.x == pytest.approx(1.0, abs=EXACT)
    assert held_out.configs[0].slope == pytest.approx(-0.5, abs=EXACT)
    r = recs[0]
    assert score(r, "val_loss") == r.outcome.val_loss
    assert score(replace(r, outcome=replace(r.outcome, val_loss=None)), "val_loss") is None  # not stored: no result
    assert score(replace(r, outcome=replace(r.outcome, status="diverged")), "val_loss") == math.inf


def alpha_path_records(c_true, deltas, ranks_of=lambda s: (4, 16, 64)):
    """α-path records at η_FFT = 2^−13: seed s's loss at rank r is 1 + 0.05·(x − log2(C·√r) − δ_s)², lora_alpha
    = 2^x for x = 4 … 12; ``ranks_of(s)``: the ranks seed s ran."""
    out = []
    for s, d in deltas.items():
        for r in ranks_of(s):
            for x in range(4, 13):
                v = 1.0 + 0.05 * (x - math.log2(c_true * r**0.5) - d) ** 2
                out.append(Record(PointCoords(key=f"{s}-{r}-{x}", config="paths", rank=r, log2_lr=-13.0, seed=s,
                                              alpha_mult=2.0 ** x / 16, paths=(("alpha", 2.0 ** x / 16),), peft_alpha=2.0**x),
                                  Outcome("complete", v)))
    return out


def test_the_alpha_law_gives_c_at_p_half_with_its_bootstrap_interval():
    """α-path at ranks 4, 16, 64 and 3 seeds; seed s's loss is 1 + 0.05·(x − log2(C·√r) − δ_s)² with
    δ = −0.2, 0, +0.2 (x = log2 lora_alpha). Equal curvatures put the seed-mean's vertex at the mean δ, so
    α* = C·√r and C (p = ½) = C exactly; a resample's log2 C is log2 C + its mean δ, so the exact bootstrap
    (27 resamples) gives log2 C ± t₂·s/√3 with s = 0.2: ± 4.303·0.11547 = ± 0.4969 (scipy's t)."""
    from scipy import stats

    from lorascale.sweep.report import fit_to_dict

    c_true = 40.0
    out = alpha_path_records(c_true, {0: -0.2, 1: 0.0, 2: 0.2})
    (law,) = fit(out).alpha_laws
    assert law.c_half == pytest.approx(c_true, rel=EXACT) and law.p == pytest.approx(0.5, abs=EXACT)
    half = stats.t.ppf(0.975, 2) * 0.2 / math.sqrt(3)
    assert [math.log2(c) for c in law.c_half_ci] == pytest.approx([math.log2(c_true) - half, math.log2(c_true) + half], abs=EXACT)
    assert fit_to_dict(fit(out))["alpha_laws"][0]["p_half"]["C_ci"] == pytest.approx(list(law.c_half_ci), rel=EXACT)


# ---- seeds per rank, colliding points, the transfer gap's α = 1, best against vertex -----------------


def shifted(config="A", seeds_at=None, deltas=(-0.2, 0.0, 0.2, 0.4), ranks=(4, 16, 64), fail=()):
    """Seed s's loss at rank r: 1 + 0.05·(x − x*(r) − δ_s)², x*(r) = −8 − ½·log2 r, x = −14 … −6. ``seeds_at``:
    rank -> the seeds run there (default every seed); ``fail``: (rank, x, seed) runs that failed."""
    out = []
    for s, d in enumerate(deltas):
        for r in ranks:
            if seeds_at is not None and s not in seeds_at.get(r, range(len(deltas))):
                continue
            for x in range(-14, -5):
                status = "failed" if (r, x, s) in fail else "complete"
                v = 1.0 + 0.05 * (x - (-8 - 0.5 * math.log2(r)) - d) ** 2
                out.append(rec(f"{config}{s}-{r}-{x}", config, r, float(x), s, status, ema_loss=v, predicted_slope=-0.5))
    return out


def test_a_rank_run_at_one_seed_gets_no_interval():
    """Four seeds shift the parabola by δ = −0.2, 0, 0.2, 0.4; rank 64 ran seed 0 only. Equal curvatures put a
    seed mean's vertex at the mean δ, so η* is x* + 0.1 at ranks 4 and 16 and x* − 0.2 = −11.2 at rank 64.
    Every one of the 4^4 resamples holds a seed of ranks 4 and 16 (the exact bootstrap): their CIs are Student's
    t-interval x* + 0.1 ± t₃·s/√4, s = √(0.2/3). Every resample holding seed 0 gives rank 64 the same −11.2: it
    used to get the zero-width CI (−11.2, −11.2) from four seeds, and the slope a CI as if it had four there."""
    from scipy import stats

    (c,) = fit(shifted(seeds_at={64: (0,)}), n_boot=1000).configs
    o = {o.rank: o for o in c.ranks}
    half = stats.t.ppf(0.975, 3) * math.sqrt(0.2 / 3) / 2
    for r, x_star in ((4, -9.0), (16, -10.0)):
        assert o[r].x == pytest.approx(x_star + 0.1, abs=EXACT)
        assert o[r].ci == pytest.approx((x_star + 0.1 - half, x_star + 0.1 + half), abs=EXACT)
    assert o[64].x == pytest.approx(-11.2, abs=EXACT) and o[64].ci is None
    # OLS over log2 r = 2, 4, 6 of −8.9, −9.9, −11.2: slope = 2·(−11.2 + 8.9)/8
    assert c.slope == pytest.approx(-0.575, abs=EXACT) and c.n_seeds == 4
    assert c.slope_ci is None and c.slope_ci_method == "n/a (rank 64 has results from one seed)"


def test_alpha_law_intervals_count_each_ranks_own_seeds():
    """As test_the_alpha_law_gives_c_at_p_half_with_its_bootstrap_interval, with four seeds (δ = ∓0.3, ∓0.1) and
    rank 64 run at seed 0 only: ranks 4 and 16 keep their exact-bootstrap interval log2(C·√r) ± t₃·s/√4 with
    s = √(0.2/3); rank 64, p and C get none (one seed there). The 175 of 4^4 resamples holding seed 0 used to
    give rank 64 a zero-width interval, and p and C intervals as if every rank had four seeds."""
    from scipy import stats

    c_true = 40.0
    out = alpha_path_records(c_true, {0: -0.3, 1: -0.1, 2: 0.1, 3: 0.3}, ranks_of=lambda s: (4, 16, 64) if s == 0 else (4, 16))
    (law,) = fit(out).alpha_laws
    o = {o.rank: o for o in law.optima}
    half = stats.t.ppf(0.975, 3) * math.sqrt(0.2 / 3) / 2
    for r in (4, 16):
        centre = math.log2(c_true * r**0.5)
        assert o[r].ci == pytest.approx((centre - half, centre + half), abs=EXACT)
    assert o[64].ci is None and law.p_ci is None and law.c_half_ci is None


def test_points_lacking_some_of_their_ranks_seeds_are_noted():
    """Seed 1's run at r = 4, log2 η = −10 failed: that point's mean is seed 0 alone, its neighbours' are both seeds'."""
    rep = fit(shifted(deltas=(0.0, 0.0), ranks=(4, 16), fail={(4, -10, 1)}), n_boot=0)
    (c,) = rep.configs
    assert c.uneven == ((4, -10.0, 1, 2),)
    (note,) = [n for n in rep.notes if "lack seeds" in n]
    assert note.startswith("A: ") and "r = 4, log2 η = -10: 1 of 2 seeds" in note


def test_two_different_points_in_one_cell_are_refused():
    """A grid configuration X and paths named X (before the spec refused it): two different runs share label, α
    multiplier, rank, log2 η and seed, and the fit used to keep whichever came last."""
    from lorascale.errors import ConfigError

    recs = records(config="X", ranks=(4,), xs=range(-11, -8))
    recs.append(rec("other", "X", 4, -10.0, 0, "complete", ema_loss=0.5))  # the η-path's run at m = 1
    with pytest.raises(ConfigError) as e:
        fit(recs, n_boot=0)
    assert e.value.field == "study" and "04-10" in e.value.message and "other" in e.value.message
    assert "name of its own" in e.value.fix


def lr_point(key, config, rank, x, loss, init=None, peft_alpha=None, finetune="lora"):
    return Record(PointCoords(key=key, config=config, rank=rank, log2_lr=x, seed=0, finetune=finetune, init=init,
                              gamma_eff=None if rank is None else 0.0, peft_alpha=peft_alpha),
                  Outcome("complete", 1.0 + 0.05 * loss**2))


def test_the_fft_transfer_gap_takes_init_b_at_alpha_one_only():
    """μA Thm 4.5: η* ∝ 1/α. Init[B] with lora_alpha = r (s = 1) shares FFT's η* = 2^-10; lora_alpha = 2r (s = 2,
    also γ_eff = 0) sits one octave lower, at 2^-11, and is no test of μA's transfer claim: it gets no gap."""
    recs = []
    for x in range(-14, -6):
        recs.append(lr_point(f"f{x}", "FFT", None, float(x), x + 10, finetune="full"))
        for r in (4, 16):
            recs.append(lr_point(f"b{r}{x}", "B α=1", r, float(x), x + 10, init="B", peft_alpha=float(r)))
            recs.append(lr_point(f"t{r}{x}", "B 2r", r, float(x), x + 11, init="B", peft_alpha=2.0 * r))
    rep = fit(recs, n_boot=0)
    assert {c.label: c.scale for c in rep.configs} == {"B 2r": 2.0, "B α=1": 1.0, "FFT": None}
    (gap,) = rep.gaps
    assert (gap.lora_config, gap.fft_config, gap.fft_log2_lr) == ("B α=1", "FFT", -10.0)
    assert gap.gaps == ((4, 0.0), (16, 0.0)) and gap.within_one_step


def test_best_observed_and_vertex_values_are_both_reported():
    """Scores 3, 1.5, 1.2, 2 at log2 η = −12 … −9: the best run is 1.2 (at −10); the parabola through (−11, 1.5),
    (−10, 1.2), (−9, 2) has divided differences f01 = −0.3, a = (0.8 + 0.3)/2 = 0.55, vertex x* = −10.5 + 0.3/1.1
    = −225/22, and value 1.5 − 0.3·(17/22) + 0.55·(17/22)·(−5/22) ≈ 1.1716, below any run."""
    from lorascale.sweep.report import fit_tables, fit_to_dict

    recs = [rec(f"k{x}", "A", 4, float(x), 0, "complete", ema_loss=v) for x, v in zip(range(-12, -8), (3, 1.5, 1.2, 2))]
    rep = fit(recs, n_boot=0)
    (o,) = rep.configs[0].ranks
    vertex = 1.5 - 0.3 * 17 / 22 + 0.55 * (17 / 22) * (-5 / 22)
    assert o.x == pytest.approx(-225 / 22, abs=EXACT) and o.x_grid == -10.0
    assert o.best_value == 1.2 and o.vertex_value == pytest.approx(vertex, abs=EXACT)
    (d,) = fit_to_dict(rep)["configs"][0]["eta_star"]
    assert d["best_value"] == 1.2 and d["vertex_value"] == pytest.approx(vertex, abs=EXACT) and "value" not in d
    ((_, headers, (row,)),) = [t for t in fit_tables(rep) if t[0].startswith("η*")]
    assert row[headers.index("best")] == "1.2"  # the run, not the vertex's 1.172


def test_a_bad_metric_or_bootstrap_is_a_field_error_not_an_assertion():
    """fit() checked its metric with assert: an AssertionError, or nothing under python -O."""
    from lorascale.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as e:
        fit([], "best", n_boot=-1)
    assert sorted(x.field for x in e.value.errors) == ["bootstrap", "metric"]


def test_optima_on_the_grids_edge_in_every_resample_get_no_interval_and_no_verdict():
    """μA's Init[A] α = 1/r predicts slope 0. Here every rank's true optimum, 2^−8, lies two steps left of
    the grid 2^−6 … 2^−3: all three seeds put every rank at the edge, −6 (neighbouring rates differ by
    ≥ 0.25, noise is 0.003). Each resample gives the same edge, so the bootstrap's spread is 0; a CI
    (−6, −6) and a slope CI (0, 0) would call the rule reproduced from a censored estimate."""
    (c,) = fit(records(seeds=(0, 1, 2), noise=0.003, slope=0.0, xs=range(-6, -2)), n_boot=200).configs
    assert [(o.x, o.at_edge, o.ci) for o in c.ranks] == [(-6.0, True, None)] * 3
    assert c.slope == pytest.approx(0.0, abs=EXACT) and c.slope_ci is None and c.slope_matches is None
    assert c.slope_ci_method.startswith("n/a (every resample gave the same slope, with the optimum at r = 4 on its grid's edge")


def test_interior_optima_keep_their_interval_when_seeds_agree():
    """The contrast: the same seeds on a grid around the optimum refine it, and the CI is a real one."""
    (c,) = fit(records(seeds=(0, 1, 2), noise=0.003, slope=0.0, xs=range(-11, -4)), n_boot=200).configs
    assert all(o.refined and not o.at_edge and o.ci is not None and o.ci[0] < o.x < o.ci[1] for o in c.ranks)
    assert c.slope_ci is not None and c.slope_matches


def test_a_configuration_or_rank_with_no_optimum_is_named_in_the_notes():
    """Config B diverged at every rate: it gets no optimum and must not vanish from the fit unremarked.
    A's r = 64 with one rate is no sweep there (no note); with two rates, both diverged, it is named."""
    recs = [r for r in records() if not (r.point.rank == 64 and r.point.log2_lr != -8.0)]
    recs += [rec(f"B{x}", "B", 4, float(x), 0, "diverged") for x in (-9, -8, -7)]
    rep = fit(recs, n_boot=0)
    assert [c.label for c in rep.configs] == ["A"] and [o.rank for o in rep.configs[0].ranks] == [4, 16]
    assert any(n.startswith("B: no optimum at r = 4: every learning rate there diverged") for n in rep.notes)
    assert not any(n.startswith("A: no optimum") for n in rep.notes)  # r = 64 ran one rate: not a sweep there
    recs = [r for r in recs if r.point.rank != 64] + [rec(f"A64{x}", "A", 64, float(x), 0, "diverged") for x in (-8, -7)]
    assert any(n.startswith("A: no optimum at r = 64: every learning rate there diverged") for n in fit(recs, n_boot=0).notes)


def test_the_notes_say_when_nothing_was_fitted_or_points_are_pending():
    rep = fit(records(), "eval", n_boot=0)  # no run stored an eval metric
    assert rep.configs == () and "no run stored an eval metric, so nothing was fitted; fit with `metric` ema" in rep.notes
    rep = fit(records(), n_boot=0, pending=3)
    assert any(n.startswith("3 points of the study are still queued or running") for n in rep.notes)
    assert not any("queued or running" in n for n in fit(records(), n_boot=0).notes)


def test_optima_at_the_grids_edge_give_no_rank_invariance_verdict():
    """True optima 2^−8, 2^−10, 2^−12 (four octaves apart) on the grid 2^−6 … 2^−3: every rank's grid optimum
    is the edge, −6, so their spread is 0 although the optima differ. "Rank-invariant: yes" would be read off
    the grid's boundary, not the data; the verdict is left open."""
    (c,) = fit(records(seeds=(0, 1, 2), noise=0.003, slope=-2.0, xs=range(-6, -2)), n_boot=200).configs
    assert [(o.x_grid, o.at_edge) for o in c.ranks] == [(-6.0, True)] * 3
    assert c.spread == 0.0 and c.rank_invariant is None
    (c,) = fit(records(seeds=(0, 1, 2), noise=0.003, slope=0.0, xs=range(-11, -4)), n_boot=200).configs
    assert c.rank_invariant is True  # the contrast: interior optima at −8 everywhere


def test_a_grid_value_with_no_result_beside_the_optimum_stops_the_parabola():
    """The SmolLM2 study at seed 0, before two interrupted points ran: Init[A] α = 1/r at r = 4 had results at
    2^−9, 2^−6 and 2^−5 only (r = 64 had the whole grid). A parabola through −9, −6, −5 put η* at 2^−6.75,
    inside a stretch nobody had measured; the optimum stays on its grid point, −6, and a note says why."""
    ema = {4: {-9: 3.7195, -6: 3.6098, -5: 3.6702}, 64: {-9: 3.718, -8: 3.663, -7: 3.630, -6: 3.601, -5: 3.634}}
    recs = [rec(f"{r}{x}", "A 1/r", r, float(x), 0, "complete", ema_loss=v) for r, by_x in ema.items() for x, v in by_x.items()]
    rep = fit(recs, n_boot=0)
    (c,) = rep.configs
    four, sixty_four = c.ranks
    assert (four.x, four.refined, four.gap, four.at_edge) == (-6.0, False, True, False)
    assert sixty_four.refined and not sixty_four.gap
    assert c.rank_invariant is None  # r = 4's optimum is known only to within the missing stretch
    assert any("has no result at their rank" in n and "A 1/r, r = 4 (log2 η = -6)" in n for n in rep.notes)
    assert [o["gap"] for o in fit_to_dict(rep)["configs"][0]["eta_star"]] == [True, False]  # the JSON says which
    # a failed run counts as a grid value too: r = 4 alone, its 2^−8 and 2^−7 interrupted
    interrupted = [rec(f"4{x}i", "A 1/r", 4, float(x), 0, "interrupted") for x in (-8, -7)]
    (c,) = fit([r for r in recs if r.point.rank == 4] + interrupted, n_boot=0).configs
    assert c.ranks[0].gap and c.ranks[0].x == -6.0


def test_a_single_seed_fit_on_censored_optima_lying_on_a_line_gets_no_interval():
    """One seed, every optimum at the grid's edge (−6): the three grid points lie exactly on a line, so the OLS
    residuals and the standard error are 0 and the t-interval has no width: a bound, not a measurement."""
    (c,) = fit(records(seeds=(0,), slope=0.0, xs=range(-6, -2)), n_boot=200).configs
    assert [o.at_edge for o in c.ranks] == [True] * 3
    assert c.slope_ci is None and c.slope_matches is None
    assert c.slope_ci_method.startswith("n/a (single seed: the optima lie exactly on a line")


def test_the_interval_method_says_when_too_few_resamples_gave_none():
    (c,) = fit(records(seeds=(0, 1, 2, 3, 4), noise=0.01, xs=range(-14, -5)), n_boot=0).configs
    assert c.slope_ci is None and c.slope_ci_method.startswith("n/a (too few resamples over 5 seeds")


def test_alpha_law_from_optima_at_the_alpha_grids_edge_gets_no_interval():
    """LoRA-α's own finding (the loss keeps falling with α) on a grid that stops too soon: every rank's α* is
    the grid's top, 256, at both seeds. p and C would get zero-width intervals; they get none, and a note."""
    recs = []
    for seed in (0, 1):
        for r in (4, 16, 64):
            for k, lora_alpha in enumerate((16, 32, 64, 128, 256)):
                p = PointCoords(key=f"{seed}{r}{lora_alpha}", config="paths", rank=r, log2_lr=-12.0, seed=seed,
                                alpha_mult=lora_alpha / 16, init="kaiming", gamma_eff=1.0, peft_alpha=float(lora_alpha))
                recs.append(Record(p, Outcome("complete", 2.0 - 0.1 * k - 0.01 * seed - 0.001 * r)))
    rep = fit(recs, n_boot=200)
    (law,) = rep.alpha_laws
    assert [(2.0 ** o.x, o.at_edge) for o in law.optima] == [(256.0, True)] * 3
    assert law.p_ci is None and law.c_half_ci is None
    assert any("α grid" in n and "paths at log2 η = -12, r = 4" in n for n in rep.notes)
