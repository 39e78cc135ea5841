from lorascale.adapters import AdapterSpec
from lorascale.recommend import scale_note


def test_scale_note_names_the_default_and_the_width_aware_alternative():
    # MiniLM: every targeted layer but the FFN output has d_in = 384 → C = √(3·384) = √1152 = 33.94, 256/33.94 = 7.54
    note = scale_note(AdapterSpec(rank=16, rule="lora-alpha"), [384] * 5 + [1536])
    assert "C = 256" in note and "√(3·d_in) = 33.9" in note and "median d_in = 384" in note and "7.54×" in note
    # LoRA-α fits C = 256 on Llama 3-1B (Fig. 1: hidden size 2048) and 512 on 8B (App. D.2: 4096)
    assert "fitted at width 2048; its width-4096 model fits 512" in note
    assert "--c" not in note  # no width-scaled C is suggested: SmolLM2's measured C (≈ 256 at 576) contradicts √d scaling
    note = scale_note(AdapterSpec(rank=16, rule="lora-alpha", c=64), [576])  # SmolLM2: √1728 = 41.57, 64/41.57 = 1.54
    assert "C = 64" in note and "41.6" in note and "1.54×" in note
    assert "set by c; the paper's is 256, fitted at width 2048" in note  # not called the paper's constant
    assert "C = 33.9 instead of 256" in scale_note(AdapterSpec(rank=4, rule="lora-alpha-analytic"), [384])
    assert scale_note(AdapterSpec(rank=4, rule="alpha-r"), [384]) == ""  # not a LoRA-α rule: nothing to say
