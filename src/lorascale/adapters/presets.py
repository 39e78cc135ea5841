"""What common frameworks write into ``adapter_config.json``, and what their options mean for the scale.

Pure: reads the config mapping only. ``check`` names the preset an adapter came from and adds notes
where LoRA-α's comparison (derived for plain LoRA that starts from B = 0) needs care.
"""

from __future__ import annotations

from .spec import BASE_CHANGING_INITS

__all__ = ["preset_name", "config_notes", "judged_by_scale", "converted_note"]


def preset_name(cfg: dict) -> str | None:
    """The framework default a plain config matches (one rank, one alpha, s = lora_alpha / r), or None."""
    if cfg.get("use_rslora") or cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        return None
    r, alpha = cfg.get("r", 8), float(cfg.get("lora_alpha", 8))
    if r == 8 and alpha == 8:
        return "PEFT's default (r = 8, α = 8)"
    if r == 32 and alpha == 16:
        return "axolotl's example config (r = 32, α = 16)"
    if alpha == r:
        return "α = r (Unsloth's setting)"
    if alpha == 2 * r:
        return "α = 2r (LLaMA-Factory's default)"
    return None


def _init(cfg: dict) -> str:
    value = cfg.get("init_lora_weights", True)
    return value.lower() if isinstance(value, str) else str(bool(value)).lower()


def judged_by_scale(cfg: dict) -> bool:
    """False where the init folds s into the base weights, so s does not set the update's size as LoRA-α assumes."""
    return not _init(cfg).startswith(BASE_CHANGING_INITS)


def config_notes(cfg: dict) -> list[str]:
    notes = []
    init = _init(cfg)
    if cfg.get("use_dora"):
        notes.append(
            "DoRA (use_dora): s multiplies B·A inside the direction W₀ + s·B·A, whose column norms are then replaced"
            " by the trained magnitude m. The scale comparison covers the direction's update; LoRA-α derived it for"
            " plain LoRA"
        )
    if init.startswith("pissa"):
        notes.append(
            f"PiSSA (init_lora_weights = {cfg.get('init_lora_weights')!r}): B·A starts as W₀'s top-r singular part divided"
            " by s and the frozen base becomes W₀ − s·B·A, so A and B have size ∝ 1/√s; with Adam a step of s·B·A then"
            " grows like √s, not s. LoRA-α's comparison starts from B = 0 and does not apply: no lora_alpha change is"
            " suggested"
        )
    elif init.startswith(BASE_CHANGING_INITS):
        notes.append(
            f"init_lora_weights = {cfg.get('init_lora_weights')!r} starts B·A away from zero and folds s into the base"
            " weights; LoRA-α's comparison starts from B = 0 and does not apply: no lora_alpha change is suggested"
        )
    elif init == "gaussian":
        notes.append("init_lora_weights = 'gaussian' draws A with std 1/r instead of kaiming's 1/√(3·d_in): LoRA-α"
                     " analytic's σ_A does not describe it")
    return notes


def converted_note(cfg: dict, metadata: dict | None) -> str | None:
    """The note for a PiSSA/OLoRA adapter that lorascale saved converted to plain LoRA (its config then reads
    ``init_lora_weights = True`` at rank 2r; only ``lorascale.json`` still names the method), else None."""
    method = (metadata or {}).get("method")
    if method not in ("pissa", "olora") or _init(cfg) != "true":
        return None
    name = {"pissa": "PiSSA", "olora": "OLoRA"}[method]
    return (f"{name} (lorascale.json: method {method}), saved converted to plain LoRA on the original base by PEFT"
            f" (path_initial_model_for_weight_conversion): rank 2r with ΔW = s·(B·A − B₀·A₀), lora_alpha doubled (×√2 under"
            f" rsLoRA) so s is unchanged. The factors did not start from B = 0, so LoRA-α's comparison does not apply: no lora_alpha"
            f" change is suggested")
