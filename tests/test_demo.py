"""The demo's figure: per-seed curves and their across-seed mean by value, the PNG smoke-tested.

The end-to-end command (two arms trained on tiny-llama) is tested in tests/commands/test_train_cli.py.
"""

from lorascale.demo import ArmCurves, Curve, DemoArm, DemoResult, demo_plot_info, mean_curve, render_demo
from lorascale.train import RunResult


def run(curve, status="complete"):
    return RunResult(status, curve[-1][1], "val_nll", None, None, 1.0, ema_curve=list(curve))


SEED0 = [(1, 3.0), (2, 2.0), (3, 1.0)]
SEED1 = [(1, 5.0), (2, 4.0), (3, 2.0)]


def test_mean_curve_is_the_stepwise_mean_at_common_steps():
    a, b = Curve((1, 2, 3), (3.0, 2.0, 1.0)), Curve((1, 2, 3), (5.0, 4.0, 2.0))
    assert mean_curve([a, b]) == Curve((1, 2, 3), (4.0, 3.0, 1.5))
    assert mean_curve([a]) == a
    assert mean_curve([a, Curve((1, 3), (1.0, 2.0))]) == Curve((1, 3), (2.0, 1.5))  # step 2 is not in both
    assert mean_curve([]) == Curve((), ())


def test_demo_plot_info_draws_every_seed_and_the_mean_of_the_completed_ones():
    result = DemoResult("lm", [
        DemoArm("standard", "alpha-r", [run(SEED0), run(SEED1)]),
        DemoArm("LoRA-α", "lora-alpha", [run([(1, 2.0), (2, 1.0)]), run([(1, 9.0)], status="diverged")]),
    ], lr=2e-5, rank=16)
    info = demo_plot_info(result)
    assert info.title == "lm: rank 16, both at η = 2e-05 (full-finetuning LR)"
    std, lora = info.arms
    assert std == ArmCurves("standard (mean of 2 seeds)",
                            (Curve((1, 2, 3), (3.0, 2.0, 1.0)), Curve((1, 2, 3), (5.0, 4.0, 2.0))),
                            Curve((1, 2, 3), (4.0, 3.0, 1.5)))
    # the diverged seed is drawn, but like the table's mean it is no result
    assert lora.seeds[1] == Curve((1,), (9.0,)) and lora.mean == Curve((1, 2), (2.0, 1.0))
    assert lora.label == "LoRA-α (mean of the 1 completed of 2 seeds)"


def test_one_seed_is_its_own_mean_and_keeps_the_plain_label(tmp_path):
    result = DemoResult("classification", [DemoArm("standard", "alpha-r", [run(SEED0)]),
                                           DemoArm("LoRA-α", "lora-alpha", [run(SEED1, status="diverged")])], 1e-4, 8)
    std, lora = demo_plot_info(result).arms
    assert std.label == "standard" and std.mean == std.seeds[0]
    assert lora.label == "LoRA-α (no seed completed)" and lora.mean == Curve((), ())
    png = render_demo(demo_plot_info(result), tmp_path / "out" / "loss_curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 0
