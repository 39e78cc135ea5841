"""Train K LoRA configurations ("members") at once on one frozen base, each exactly as its own run.

Per step, the members' batches are stacked into one (K·B rows), the base weights are used once for
all of them and the adapters' contributions are batched over members (:mod:`.batched_lora`). The
summed loss Σ_k w_k·loss_k has disjoint parameters per member, so member k's gradient is exactly
∂loss_k/∂θ_k; one AdamW with a param group per member (and per member head) is elementwise, the same
math as K optimizers. Each member keeps its own seed (init draws and data order), learning rates and
schedule, AdamW settings, grad-norm clip on its own global norm, EMA, divergence guard, evaluation,
run directory, adapter and :class:`~lorascale.train.RunResult`.

**How equal to separate runs.** Without dropout (tiny models, most LLMs' fine-tuning configs), a
member computes what :func:`lorascale.train.train` computes with the same config, up to the order of
float reductions: the base matmul over K·B rows may be blocked differently than over B rows (oneDNN/
MKL on CPU, cuBLAS on GPU), and a member's batch right-padded to a wider member's sequence length
takes a masked attention path. These ~1e-7 relative differences per step compound over training
(measured in ``tests/train/test_members.py``). **With dropout** (MiniLM/BERT use 0.1 in train mode)
members draw their masks from one global stream over the stacked batch, not from their own seed's
stream: members then match separate runs in distribution, not sample by sample.

A member that diverges is recorded ``diverged`` and leaves the stack; the others go on. Full
finetuning cannot share a base and is refused, as are members that disagree on anything in
:data:`~.pack.PACK_FIELDS`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence

from ...errors import ConfigError
from ...interrupts import describe, shielded
from ...outputs import check_output_dir
from ...vocabulary import RunStatus
from ..build import param_groups
from ..callbacks import Callback
from ..config import TrainConfig
from ..evaluate import accumulation_weights
from ..loop import RunResult, make_accelerator, total_steps
from ..records import outcome_of
from .batched_lora import StackedMembers
from .build import Pack, build_pack
from .evaluate import evaluate_members
from .losses import stack_batches, stacked_losses
from .member import Member
from .pack import check_pack

__all__ = ["train_members"]

logger = logging.getLogger(__name__)


def train_members(cfgs: Sequence[TrainConfig], callbacks: Sequence[Sequence[Callback]] | None = None, progress: bool = True,
                  pack: Pack | None = None, on_member_end: Callable[[int, RunResult], None] | None = None) -> list[RunResult]:
    """Train every config in ``cfgs`` as a member of one pack; one :class:`RunResult` per config, in order.

    ``callbacks`` holds one list per member; each sees a :class:`TrainContext` of its own member whose
    ``model``/``optimizer`` are the pack's (``ctx.extra["adapter"]`` and ``ctx.extra["param_groups"]`` name
    the member's parts). Callbacks must not run the model themselves: it expects a stacked batch.
    ``pack`` is a prebuilt :func:`build_pack` of the same configs (tests inspect its model afterwards).
    ``on_member_end(i, result)`` is called once for member ``i`` as soon as it has ended (diverged at step 3,
    or complete), while the others train on: a sweep stores each result then, so a later interrupt of the
    pack does not send a finished member back to the queue. Members still running when the pack is
    interrupted or fails get no call: the caller records those.
    """
    import torch
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    cfgs = list(cfgs)
    check_pack(cfgs)
    if any(c.save_every for c in cfgs):
        raise ConfigError("save_every", "a pack of members writes no checkpoints",
                          fix="train separate runs to checkpoint and resume")
    if callbacks is not None and (len(callbacks) != len(cfgs) or not all(isinstance(c, (list, tuple)) for c in callbacks)):
        raise ConfigError("callbacks", f"expected one list of callbacks per member ({len(cfgs)} lists)",
                          fix="pass [[...], [...], ...], an empty list for a member without callbacks")
    started = time.time()
    set_seed(cfgs[0].seed)  # during training only dropout draws from the global generator
    accelerator = make_accelerator(cfgs[0])
    if accelerator.num_processes > 1:
        raise ConfigError("members", "a pack trains in one process", fix="run one pack per process, or separate runs under accelerate launch")
    if accelerator.mixed_precision == "fp16":  # one loss scale would skip every member's step when one overflows
        raise ConfigError("precision", "a pack of members does not train in fp16", fix="use bf16, or separate runs")
    if accelerator.is_main_process:  # before the base loads: each member's folder can be written, and is new
        for cfg in cfgs:
            check_output_dir(cfg.out_dir or "runs", "out_dir", fresh=cfg.out_dir is not None, what="run")
    if pack is None:
        pack = build_pack(cfgs, quiet=not progress)
    assert pack.cfgs == cfgs, "the prebuilt pack was built from other configs"
    first, k = cfgs[0], len(cfgs)

    groups = [param_groups(pack.model, cfg, adapter=name) for cfg, name in zip(cfgs, pack.names)]
    optimizer = torch.optim.AdamW([g for gs in groups for g in gs])  # every group carries its member's settings
    model, optimizer, val_loader, *loaders = accelerator.prepare(pack.model, optimizer, pack.val_loader, *pack.train_loaders)
    steps = total_steps(first, len(loaders[0]))  # after prepare: each of P processes reads 1/P of an epoch's batches
    metric = pack.task.eval_metric
    member_callbacks = callbacks or [()] * k
    pack_id = uuid.uuid4().hex[:12]  # in each member's summary: run_seconds counts the pack's time once
    members = [Member(name, cfg, loader, steps, cbs, metric, accelerator.is_main_process, started, pack_id)
               for name, cfg, loader, cbs in zip(pack.names, cfgs, loaders, member_callbacks)]
    for m in members:  # refuse before any member writes
        if m.writer.enabled and (m.run_dir / "summary.json").exists():
            raise ConfigError("out_dir", f"{m.run_dir} already holds a run", "pass a new out_dir (runs are never overwritten)")
    peft_model = accelerator.unwrap_model(model)
    hf_model = peft_model.get_base_model()
    if _has_dropout(hf_model):
        logger.info("%s uses dropout in training: the %d members draw their masks from one stream over the stacked batch,"
                    " so they match separate runs in distribution, not sample by sample", first.model, k)
    stack = StackedMembers(peft_model, pack.names)  # refuses what it cannot batch before any member writes
    _start_writers(members)
    model.train()
    bar = tqdm(total=steps, desc=f"train {k} members of {first.model}", disable=not progress, dynamic_ncols=True)

    reported: set[int] = set()

    def report_ended() -> None:
        for i, m in enumerate(members):
            if on_member_end is not None and m.result is not None and i not in reported:
                reported.add(i)
                on_member_end(i, m.result)

    def evaluate(ms: list[Member]) -> list[dict]:
        return evaluate_members(model, hf_model, val_loader, pack.task, first.max_val_batches, stack, [m.name for m in ms],
                                [m.cfg.temperature for m in ms])

    try:
        with stack:
            i = 0
            for m, gs in zip(members, groups):
                m.begin(model, optimizer, optimizer.param_groups[i:i + len(gs)])  # its body (and head) groups
                i += len(gs)
            for step in range(steps):
                running = [m for m in members if m.running]
                if not running:
                    break
                for m in running:
                    m.set_lr(step)
                t0 = time.perf_counter()
                losses, tokens, batches = _accumulate(model, hf_model, accelerator, stack, running, pack, first.grad_accum)
                tokens = {m: n * accelerator.num_processes for m, n in zip(running, tokens)}  # all processes, as a run counts
                for m, loss, batch in zip(running, losses, batches):
                    if m.check_divergence(step, loss, batch):
                        for p in m.params:  # no update from this step, as a separate run that stops here
                            p.grad = None
                norms = {}
                for m in [m for m in running if m.running]:
                    norm = float(accelerator.clip_grad_norm_(m.params, m.cfg.grad_clip))  # its own global norm
                    if not m.check_gradient(step, norm):
                        norms[m] = norm
                        m.cbs.on_before_optimizer_step(m.ctx)
                stepping = list(norms)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t0
                evals = [None] * len(stepping)
                if first.eval_every and (step + 1) % first.eval_every == 0 and step + 1 < steps and stepping:
                    evals = evaluate(stepping)
                for m, ev in zip(stepping, evals):
                    m.step_done(step, norms[m], dt, tokens[m], ev)
                done = [m for m in stepping if m.ctx.stop_reason or step + 1 == steps]
                if done:
                    for m, ev in zip(done, evaluate(done)):
                        m.complete(ev, peft_model)
                bar.update(1)
                bar.set_postfix(running=f"{sum(m.running for m in members)}/{k}", loss=f"{min(losses):.3f}")
                report_ended()
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM under the CLI and in sweep workers
        _report_before_stopping(report_ended)  # members that ended in this very step keep their results
        for m in members:
            if m.running:
                m.abort(RunStatus.INTERRUPTED, f"interrupted by {describe(e)} after {m.ctx.step} steps")
        raise
    except BaseException as e:
        _report_before_stopping(report_ended)
        for m in members:
            if m.running:
                m.abort(RunStatus.FAILED, f"{type(e).__name__}: {e}")
        raise
    finally:
        bar.close()
        for m in members:
            m.writer.close()
    return [m.result for m in members]


def _start_writers(members: list[Member]) -> None:
    """Each member's folder says "running" from here; when one cannot start (a full disk, a folder it may not
    write), those already started record that they failed, as a separate run's folder would."""
    started: list[Member] = []
    try:
        for m in members:
            m.writer.start(m.cfg.to_dict())
            started.append(m)
    except BaseException as e:
        for m in started:
            m.abort(*outcome_of(e, 0))
        raise


def _report_before_stopping(report_ended: Callable[[], None]) -> None:
    """Report the members that have ended before the pack stops; a second signal waits, and a failure to
    report is logged (the caller records those members with the others)."""
    try:
        with shielded():
            report_ended()
    except Exception as e:  # a storage error here must not replace the stop that is being handled
        logger.warning("a finished member could not be reported before the pack stopped: %s", e)


def _accumulate(model, hf_model, accelerator, stack: StackedMembers, running: list[Member], pack: Pack, grad_accum: int):
    """Forward and backward of one optimizer step for the running members, ``grad_accum`` stacked
    micro-batches deep. Returns each member's step loss (its mean over its targets), token count and
    last micro-batch."""
    import torch

    stack.active = [m.name for m in running]
    micro = [[next(m.batches) for _ in range(grad_accum)] for m in running]  # each member's own order
    weights = [accumulation_weights(mb, accelerator) for mb in micro]  # = one big batch of the member's targets
    sums = [torch.zeros((), device=accelerator.device) for _ in running]
    tokens = [0] * len(running)
    for i in range(grad_accum):
        batch = stack_batches([mb[i] for mb in micro], pack.base.pad_id)
        losses = stacked_losses(model, hf_model, pack.task, batch, [m.cfg.temperature for m in running])
        # disjoint parameters: member j's gradient is exactly w_j·∂loss_j/∂θ_j
        accelerator.backward(sum(loss * w[i] for loss, w in zip(losses, weights)))
        for j, loss in enumerate(losses):
            sums[j] += loss.detach().float() * weights[j][i]
            tokens[j] += int(micro[j][i]["attention_mask"].sum())
    # each member's mean over every process's targets, as a separate run reduces its step loss
    return [float(s) for s in accelerator.reduce(torch.stack(sums), "mean")], tokens, [mb[-1] for mb in micro]


def _has_dropout(hf_model) -> bool:
    import torch.nn as nn

    c = hf_model.config
    return (any(isinstance(m, nn.Dropout) and m.p > 0 for m in hf_model.modules())
            or getattr(c, "attention_dropout", 0.0) > 0 or getattr(c, "attention_probs_dropout_prob", 0.0) > 0)
