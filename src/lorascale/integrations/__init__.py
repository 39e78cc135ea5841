"""lorascale inside other trainers: Hugging Face Trainer and TRL (:mod:`lorascale.integrations.hf`)."""

from .hf import attach, metadata_callback, schedule_callback

__all__ = ["attach", "schedule_callback", "metadata_callback"]
