"""``lorascale tune``: LoRA-α's prior, μA's η_FFT transfer, and successive halving over members.

request  what is asked (a TrainConfig and the search's shape)
halving  pure rung arithmetic and the callback that cuts members at each rung
search   the stages, their Optuna studies, the answer
plots    the search's figure (compute, then render)
"""

from .request import TuneRequest
from .search import TuneResult, tune

__all__ = ["TuneRequest", "TuneResult", "tune"]
