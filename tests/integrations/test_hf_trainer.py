"""lorascale inside HF Trainer: monitors logged through the trainer (TensorBoard, log_history), lorascale.json on save."""

import json

import pytest
import torch

import lorascale
from lorascale.diagnostics import SignalDriftMonitor, trainer_callback
from lorascale.errors import ConfigError
from lorascale.models import load_model


class Rows(torch.utils.data.Dataset):
    def __init__(self, n=8, t=12):
        self.ids = torch.randint(3, 250, (n, t), generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _trainer(tmp_path, steps=3, report_to=(), callbacks=(), rule="alpha-r", **extra):
    from transformers import Trainer, TrainingArguments

    model = lorascale.apply(load_model("tiny-llama").model, rank=4, rule=rule, init="A", targets=["q_proj", "down_proj"])
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=2, learning_rate=1e-2,
                             logging_steps=1, report_to=list(report_to), use_cpu=True, disable_tqdm=True, **extra)
    return Trainer(model=model, args=args, train_dataset=Rows(), callbacks=list(callbacks))


def test_attached_monitors_reach_tensorboard_and_log_history(tmp_path, one_thread):
    pytest.importorskip("tensorboard", reason="install lorascale[integrations] for the TensorBoard check")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = _trainer(tmp_path, report_to=["tensorboard"], save_strategy="no")
    cb = lorascale.attach(trainer, SignalDriftMonitor())
    trainer.train()

    assert [r["step"] for r in cb.history] == [1, 2, 3]
    logged = {e["step"]: e["sd/all/signal_norm"] for e in trainer.state.log_history if "sd/all/signal_norm" in e}
    assert logged == {r["step"]: r["sd/all/signal_norm"] for r in cb.history}  # the same numbers, at the measured steps

    (events,) = (tmp_path / "runs").glob("*")  # TensorBoardCallback's default folder: output_dir/runs/<time_host>
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert "train/sd/all/signal_norm" in acc.Tags()["scalars"] and "train/loss" in acc.Tags()["scalars"]
    tb = {e.step: e.value for e in acc.Scalars("train/sd/all/signal_norm")}
    assert set(tb) == {1, 2, 3}
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]  # the trainer's own logging is untouched
    for step, value in tb.items():  # TensorBoard stores float32: 2⁻²⁴ ≈ 6e-8 relative rounding
        assert value == pytest.approx(logged[step], rel=1e-6)


def test_callback_passed_at_construction_misses_log_history_until_attached(tmp_path, one_thread):
    early = trainer_callback(SignalDriftMonitor())
    trainer = _trainer(tmp_path / "a", callbacks=[early], save_strategy="no")
    trainer.train()
    assert early.history and not any("sd/all/signal_norm" in e for e in trainer.state.log_history)  # the bug attach fixes

    early = trainer_callback(SignalDriftMonitor())
    trainer = _trainer(tmp_path / "b", callbacks=[early], save_strategy="no")
    cb = lorascale.attach(trainer)  # takes the monitors over, so nothing runs twice
    assert [c for c in trainer.callback_handler.callbacks if getattr(c, "lorascale_monitors", False)] == [cb]
    trainer.train()
    assert early.history == [] and sum("sd/all/signal_norm" in e for e in trainer.state.log_history) == 3


def test_metadata_callback_writes_lorascale_json_on_save(tmp_path, one_thread):
    from lorascale.adapters.lint import lint_adapter

    meta = lorascale.metadata_callback("alpha-r", init="A")
    trainer = _trainer(tmp_path, steps=2, callbacks=[meta], save_strategy="steps", save_steps=2)
    trainer.train()
    for folder in (tmp_path / "checkpoint-2", tmp_path):
        saved = json.loads((folder / "lorascale.json").read_text())
        assert (saved["rule"], saved["init"], saved["rank"], saved["lr"]) == ("alpha-r", "A", 4, 1e-2)
        assert saved["targets"] == ["down_proj", "q_proj"]
    assert "lorascale.json: planned with rule alpha-r" in lint_adapter(tmp_path / "checkpoint-2").notes[0]


def test_metadata_callback_refuses_a_rule_the_adapters_do_not_follow(tmp_path):
    trainer = _trainer(tmp_path, callbacks=[lorascale.metadata_callback("lora-alpha")], save_strategy="no")
    with pytest.raises(ConfigError) as e:
        trainer.train()
    assert e.value.field == "rule" and "s = 1," in e.value.message and "128" in e.value.message


class Labeled(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"input_ids": torch.tensor([101, 2000 + i, 102]), "labels": torch.tensor(i % 2)}


def test_trainer_saves_record_the_hub_id_not_a_local_path(tmp_path, one_thread):
    from transformers import Trainer, TrainingArguments

    model = lorascale.apply(load_model("minilm-l6", num_labels=2).model, rank=4, rule="alpha-r")
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, report_to=[],
                             use_cpu=True, disable_tqdm=True, save_strategy="steps", save_steps=1)
    trainer = Trainer(model=model, args=args, train_dataset=Labeled(),
                      callbacks=[lorascale.metadata_callback("alpha-r", model_name="minilm-l6")])
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))  # calls no callback: the model itself must carry the name
    for folder in (tmp_path / "checkpoint-1", tmp_path / "final"):
        saved = json.loads((folder / "adapter_config.json").read_text())
        assert saved["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2", folder
    assert json.loads((tmp_path / "checkpoint-1" / "lorascale.json").read_text())["model"] == "minilm-l6"


def test_metadata_callback_records_the_method_peft_built(tmp_path, one_thread):
    from transformers import Trainer, TrainingArguments

    model = lorascale.apply(load_model("tiny-llama").model, rank=4, rule="alpha-r", method="dora", targets=["q_proj"])
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=2, learning_rate=1e-2,
                             report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[lorascale.metadata_callback("alpha-r")])
    trainer.train()
    trainer.save_model()
    saved = json.loads((tmp_path / "lorascale.json").read_text())
    assert (saved["method"], saved["rule"], saved["pissa_niter"]) == ("dora", "alpha-r", None)  # read from use_dora=True


def test_metadata_callback_records_a_loraplus_optimizer_s_rates_not_the_trainer_s(tmp_path, one_thread):
    """Trainer ignores learning_rate for an optimizer passed in: the file takes A's peak and B's ratio from it."""
    from transformers import Trainer, TrainingArguments

    model = lorascale.apply(load_model("tiny-llama").model, rank=4, rule="alpha-r", targets=["q_proj"])
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2,
                             warmup_steps=1, report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no")
    optimizer = lorascale.loraplus_optimizer(model, lr=3e-4, loraplus_lr_ratio=8)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(), optimizers=(optimizer, None),
                      callbacks=[lorascale.metadata_callback("alpha-r")])
    trainer.train()
    saved = json.loads((tmp_path / "lorascale.json").read_text())
    assert (saved["lr"], saved["method"], saved["loraplus_lr_ratio"]) == (3e-4, "loraplus", 8)

    plain = lorascale.loraplus_optimizer(model, lr=3e-4, loraplus_lr_ratio=16)  # the default ratio: one spelling
    meta = lorascale.metadata_callback("alpha-r")
    meta.on_train_begin(args, trainer.state, None, model=model, optimizer=plain)
    assert meta.rates == (3e-4, 16)
    meta.on_train_begin(args, trainer.state, None, model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=5e-3))
    assert meta.rates == (5e-3, None)  # one rate for A and B: plain AdamW, no ratio
    frozen_b = lorascale.loraplus_optimizer(model, lr=3e-4)
    for g in frozen_b.param_groups:
        g["lr"] = 0.0 if g["lr"] > 3e-4 else g["lr"]  # B's groups (16 × lr) frozen: no ratio to speak of
    meta.on_train_begin(args, trainer.state, None, model=model, optimizer=frozen_b)
    assert meta.rates == (None, None)  # the file then falls back to the trainer's learning_rate
    meta.on_train_begin(args, trainer.state, None, model=model, optimizer=None)  # the trainer builds its own
    assert meta.rates == (None, None)


def test_metadata_callback_on_a_transformers_model_with_a_named_adapter(tmp_path):
    """add_adapter (transformers' PEFT integration): no PeftModel wrapper, active_adapter a method, here "sft"."""
    from types import SimpleNamespace

    from peft import inject_adapter_in_model

    model = load_model("tiny-llama").model
    config = lorascale.lora_config(model, rank=4, rule="alpha-r", targets=["q_proj"])
    # what add_adapter does (transformers 5.25 needs peft ≥ 0.22 for add_adapter itself; this environment has 0.21)
    inject_adapter_in_model(config, model, adapter_name="sft")
    model.peft_config, model._hf_peft_config_loaded = {"sft": config}, True
    meta = lorascale.metadata_callback("alpha-r")
    args = SimpleNamespace(output_dir=str(tmp_path), learning_rate=1e-3)
    state = SimpleNamespace(global_step=2, is_world_process_zero=True)
    meta.on_train_begin(args, state, None, model=model)  # before: no layer found for "default", so nothing checked
    meta.on_save(args, state, None, model=model)  # before: KeyError 'default'
    saved = json.loads((tmp_path / "checkpoint-2" / "lorascale.json").read_text())
    assert (saved["rule"], saved["rank"], saved["targets"]) == ("alpha-r", 4, ["q_proj"])
    with pytest.raises(ConfigError) as e:  # the rule checked against the "sft" layers: lora-alpha's s is 128, not 1
        lorascale.metadata_callback("lora-alpha").on_train_begin(args, state, None, model=model)
    assert e.value.field == "rule"


def test_metadata_callback_checks_its_rule_and_init_first():
    from lorascale.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as e:  # before: a raw ValueError from Init("kaimnig")
        lorascale.metadata_callback("lora-alpah", init="kaimnig")
    assert {x.field: x.fix for x in e.value.errors} == {
        "rule": "choose one of lora-alpha, lora-alpha-analytic, alpha-r, alpha-2r, fixed-alpha, rslora or mua",
        "init": "choose one of kaiming, A or B"}


def test_metadata_callback_refuses_an_init_the_factors_contradict(tmp_path):
    """Under alpha-r the scale check cannot tell Init[A] from Init[B] (s = 1 either way), so lorascale.json
    would have said kaiming for an Init[B] run. Before the first step the factors tell: B = 0 or A = 0."""
    trainer = _trainer(tmp_path, callbacks=[lorascale.metadata_callback("alpha-r", init="B")], save_strategy="no")
    with pytest.raises(ConfigError) as e:  # the adapters were drawn with Init[A]: B = 0
        trainer.train()
    assert e.value.field == "init" and "B = 0" in e.value.message
    trainer = _trainer(tmp_path, callbacks=[lorascale.metadata_callback("alpha-r")], save_strategy="no")
    lorascale.init_after_wrap(trainer, "B")
    with pytest.raises(ConfigError) as e:  # now A = 0: told kaiming
        trainer.train()
    assert e.value.field == "init" and "A = 0" in e.value.message and "init='B'" in e.value.fix
    trainer = _trainer(tmp_path, steps=1, callbacks=[lorascale.metadata_callback("alpha-r", init="B")])
    lorascale.init_after_wrap(trainer, "B")
    trainer.train()  # told the truth: trains and records it
    assert json.loads((tmp_path / "lorascale.json").read_text())["init"] == "B"
