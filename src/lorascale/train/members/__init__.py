"""Many LoRA configurations ("members") trained at once on one frozen base, each as its own run.

>>> results = train_members([cfg.replace(lr=lr, seed=s) for lr in lrs for s in seeds])

See :mod:`.loop` for what is shared, what each member owns and how exactly members equal separate
runs; :mod:`.batched_lora` for the batched forward and why zero-padding mixed ranks is exact.
"""

from .batched_lora import StackedMembers, lora_delta, stack_factors
from .build import Pack, build_pack
from .loop import train_members
from .memory import MemoryEstimate, estimate_memory, members_that_fit
from .pack import PACK_FIELDS, check_pack, member_names, pack_errors, pack_key, solo_reason

__all__ = [
    "train_members", "pack_key", "pack_errors", "check_pack", "solo_reason", "PACK_FIELDS", "member_names", "build_pack", "Pack",
    "StackedMembers", "lora_delta", "stack_factors", "MemoryEstimate", "estimate_memory", "members_that_fit",
]
