"""The foundation commands through `lorascale.cli.main`: output values and exit codes."""

import json
import math

import pytest

from lorascale.cli import main


def run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_recommend_smollm2_analytic_matches_formula_for_every_layer(capsys):
    out = run_json(capsys, ["recommend", "--model", "smollm2-135m", "--rank", "16", "--rule", "lora-alpha-analytic", "--json"])
    assert out["lr"] == 2e-5
    layers = out["layers"]
    assert len(layers) == 30 * 3  # μA Table 3: gate/up/down in each of 30 blocks
    for ly in layers:
        assert ly["scale"] == pytest.approx(math.sqrt(3 * ly["d_in"] * 16) / 16, rel=1e-12), ly["name"]
        assert ly["rank"] == 16
    assert {ly["d_in"] for ly in layers} == {576, 1536}
    pc = out["peft_config"]
    assert pc["r"] == 16 and pc["use_rslora"] is False
    assert pc["alpha_pattern"]["mlp\\.gate_proj"] == pytest.approx(166.2769, abs=1e-3)


def test_recommend_tiny_variant_i_json(capsys):
    out = run_json(capsys, ["recommend", "--model", "tiny-llama", "--rank", "4", "--json"])
    assert out["peft_config"]["lora_alpha"] == 512.0  # 256·√4
    assert len(out["layers"]) == 14 and all(ly["scale"] == 128.0 for ly in out["layers"])  # tiny-llama: 7 linear × 2 blocks


def test_recommend_readable_table(capsys):
    assert main(["recommend", "--model", "tiny-bert", "--rank", "4", "--rule", "alpha-r"]) == 0
    text = capsys.readouterr().out
    assert "LoraConfig(" in text and "learning rate: 0.0002" in text  # 10 × η_FFT for the conventional rule
    rows = [line.split()[0] for line in text.split("LoraConfig(")[0].splitlines() if line.strip()]
    assert "attention.output.dense" in rows and "output.dense" in rows  # two separate rows, not one "dense"
    # a classifier's config names its task, so PEFT trains and saves the fresh head a copied config would freeze
    assert "    task_type='SEQ_CLS',\n)" in text


def test_recommend_json_config_builds_the_same_peft_model(capsys):
    from peft import LoraConfig, get_peft_model

    from lorascale.models import load_model

    out = run_json(capsys, ["recommend", "--model", "tiny-bert", "--rank", "4", "--json"])
    assert out["peft_config"]["task_type"] == "SEQ_CLS" and out["peft_config"]["modules_to_save"] is None
    model = get_peft_model(load_model("tiny-bert", task="classification").model, LoraConfig(**out["peft_config"]))
    head = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    assert head and all("classifier" in n for n in head)  # the head trains beside the adapter


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["recommend", "--model", "tiny-llama", "--rank", "0"], "--rank"),
        (["recommend", "--model", "tiny-llama", "--rank", "65"], "rank"),
        (["recommend", "--model", "tiny-llama", "--alpha", "0"], "--alpha"),
        (["recommend", "--model", "tiny-llama", "--alpha", "nan"], "--alpha"),
        (["recommend", "--model", "tiny-llama", "--rule", "nope"], "--rule"),
        (["recommend", "--model", "no-such-model"], "model"),
        (["recommend", "--model", "a/b--c"], "model"),  # shaped like org/name, rejected by huggingface_hub's validator
        (["recommend", "--model", "tiny-llama", "--rank", "4", "--targets", "zz_proj"], "targets"),
        (["transfer", "--lr", "1e-3", "--from-width", "64", "--from-config", "A", "--to-config", "fft", "--from-rank", "4"], "--to-config"),
        (["transfer", "--lr", "-1", "--from-width", "64", "--from-rank", "4"], "--lr"),
        (["check", "/nonexistent/adapter"], "ADAPTER_DIR"),
        (["export", "/nonexistent/run"], "RUN"),
    ],
)
def test_bad_input_exits_2_naming_the_field(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and "error" in err


def test_all_errors_reported_at_once(capsys):
    assert main(["recommend", "--model", "tiny-llama", "--rank", "0", "--alpha", "-1", "--rule", "x"]) == 2
    err = capsys.readouterr().err
    assert "--rank" in err and "--alpha" in err and "--rule" in err


def test_transfer_rank_and_fft(capsys):
    out = run_json(capsys, ["transfer", "--lr", "1e-3", "--from-config", "A", "--from-rank", "4", "--to-rank", "64", "--from-width", "576", "--json"])
    assert out["to"]["lr"] == pytest.approx(1e-3 / 4, rel=1e-12)  # η ∝ r^-1/2: 16× rank → 4× smaller (rel: rounding only)
    out = run_json(capsys, ["transfer", "--lr", "2e-5", "--from-config", "B", "--from-rank", "16", "--to-config", "fft", "--from-width", "576", "--to-width", "1152", "--json"])
    assert out["to"]["lr"] == pytest.approx(1e-5, rel=1e-9)  # float rounding only
    assert (out["from"]["rank"], out["to"]["rank"]) == (16, None)  # full finetuning has no rank
    out = run_json(capsys, ["transfer", "--lr", "2e-5", "--from-config", "fft", "--from-rank", "8", "--to-config", "B",
                            "--from-width", "576", "--json"])  # a fft reference's rank is the target's when to_rank is unset
    assert (out["from"]["rank"], out["to"]["rank"]) == (None, 8)
    assert out["to"]["lr"] == pytest.approx(2e-5, rel=1e-12)  # Init[B] α = 1 is FFT's η (rel: float rounding only)


def test_check_on_conventional_adapter(tmp_path, capsys, tiny_llama):
    from peft import LoraConfig, get_peft_model

    get_peft_model(tiny_llama.model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "down_proj"])).save_pretrained(tmp_path)
    out = run_json(capsys, ["check", str(tmp_path), "--json"])
    assert len(out["layers"]) == 4  # q_proj and down_proj in 2 blocks
    assert all(ly["ratio"] == pytest.approx(128.0, rel=1e-9) for ly in out["layers"])  # float rounding only
    assert main(["check", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    rows = [line.split()[0] for line in text.split("reference:")[0].splitlines()[2:] if line.strip()]
    assert rows == ["mlp.down_proj", "self_attn.q_proj"]  # one row per layer type, not one per layer
    assert "under-scaled 128×" in text and "preset: α = r" in text and '"lora_alpha": 512.0' in text


def test_recommend_rslora_table_matches_config(capsys):
    out = run_json(capsys, ["recommend", "--model", "tiny-llama", "--rank", "16", "--rule", "rslora", "--lora-alpha", "16", "--json"])
    assert out["peft_config"]["use_rslora"] is True and out["peft_config"]["lora_alpha"] == 16
    assert {g["lora_alpha"] for g in out["groups"]} == {16.0}  # s = 16/√16 = 4, written back as lora_alpha = 4·√16
    assert {g["scale"] for g in out["groups"]} == {4.0}


def test_recommend_each_method_with_its_default_learning_rate(capsys):
    pissa = run_json(capsys, ["recommend", "--model", "tiny-llama", "--rank", "4", "--rule", "alpha-r", "--method", "pissa", "--json"])
    assert pissa["method"] == "pissa" and pissa["peft_config"]["init_lora_weights"] == "pissa"
    assert pissa["lr"] == 2e-5 and "PiSSA" in pissa["lr_note"]  # η_FFT, not the conventional 10 × η_FFT
    plus = run_json(capsys, ["recommend", "--model", "tiny-llama", "--rank", "4", "--rule", "alpha-r", "--method", "loraplus", "--json"])
    # rel=1e-9: float rounding only
    assert plus["lr"] == pytest.approx(2e-4, rel=1e-9) and plus["lr_b"] == pytest.approx(16 * 2e-4, rel=1e-9) and plus["loraplus_lr_ratio"] == 16
    dora = run_json(capsys, ["recommend", "--model", "tiny-llama", "--rank", "4", "--method", "dora", "--loraplus-lr-ratio", "4",
                             "--json"])
    # rel=1e-9: float rounding only
    assert dora["peft_config"]["use_dora"] is True and dora["lr"] == 2e-5 and dora["lr_b"] == pytest.approx(8e-5, rel=1e-9)
    assert len(dora["layers"]) == 14 and all(ly["scale"] == 128.0 for ly in dora["layers"])  # LoRA-α's scale, DoRA or not
    assert main(["recommend", "--model", "tiny-llama", "--rank", "4", "--method", "olora"]) == 0
    text = capsys.readouterr().out
    assert "init_lora_weights='olora'" in text and "method olora" in text


def test_bad_method_exits_2_naming_the_flag(capsys):
    assert main(["recommend", "--model", "tiny-llama", "--method", "vera"]) == 2
    err = capsys.readouterr().err
    assert "--method" in err and "loraplus" in err and "Traceback" not in err
    assert main(["recommend", "--model", "tiny-llama", "--method", "olora", "--pissa-niter", "4"]) == 2
    assert "--pissa-niter" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "repro"])
def test_a_full_disk_in_any_command_is_one_line_and_exit_1(command, monkeypatch, capsys):
    """demo and repro write many files late in a run; ENOSPC there was a traceback (train records it as failed)."""
    import errno
    import importlib

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "out/report.png")

    monkeypatch.setattr(importlib.import_module(f"lorascale.commands.{command}"), "run", full)
    argv = [command] if command == "demo" else [command, "headline"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on the device writing out/report.png" in err and "Traceback" not in err


def test_other_os_errors_are_not_disguised_as_a_full_disk(monkeypatch):
    import errno

    import lorascale.commands.demo as demo

    monkeypatch.setattr(demo, "run", lambda args: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        main(["demo"])
