"""The batched LoRA forward: zero-padding is exact, gradients are PEFT's, rows never mix."""

import pytest
import torch
import torch.nn.functional as F

from lorascale.train.members import StackedMembers, lora_delta, stack_factors


def _peft_delta(x, a, b, s):
    return F.linear(F.linear(x, a), b) * s  # PEFT's lora_B(lora_A(x)) * scaling


def test_zero_padding_is_exact_through_adamw_with_weight_decay(one_thread):
    """A rank-2 member padded to rank 8 beside a rank-8 member: the padded rows of A and columns of B
    get exactly zero gradients, AdamW (weight decay 0.01) keeps them exactly zero, and the real block
    follows an unpadded run of the same member."""
    g = torch.Generator().manual_seed(0)
    d_in, d_out, n, r_max, r = 16, 12, 10, 8, 2
    a_real, b_real = torch.randn(r, d_in, generator=g) / 4, torch.randn(d_out, r, generator=g) / 4
    a_other, b_other = torch.randn(r_max, d_in, generator=g) / 4, torch.randn(d_out, r_max, generator=g) / 4
    scale = torch.tensor([2.0, 0.5])
    xs = [torch.randn(2, n, d_in, generator=g) for _ in range(5)]
    targets = [torch.randn(2, n, d_out, generator=g) for _ in range(5)]

    # padding stored as parameters: the worst case for exactness (the pack itself rebuilds it every forward)
    a_pad, b_pad = (t.detach().clone().requires_grad_() for t in stack_factors([a_real, a_other], [b_real, b_other]))
    assert a_pad.shape == (2, r_max, d_in) and b_pad.shape == (2, d_out, r_max)
    opt = torch.optim.AdamW([a_pad, b_pad], lr=1e-2, weight_decay=0.01)
    a_ref, b_ref = a_real.clone().requires_grad_(), b_real.clone().requires_grad_()
    opt_ref = torch.optim.AdamW([a_ref, b_ref], lr=1e-2, weight_decay=0.01)
    for x, y in zip(xs, targets):
        ((lora_delta(x, a_pad, b_pad, scale) - y) ** 2).mean(dim=(1, 2)).sum().backward()
        assert torch.count_nonzero(a_pad.grad[0, r:]) == 0 and torch.count_nonzero(b_pad.grad[0, :, r:]) == 0
        opt.step()
        opt.zero_grad()
        ((_peft_delta(x[0], a_ref, b_ref, 2.0) - y[0]) ** 2).mean().backward()
        opt_ref.step()
        opt_ref.zero_grad()
    assert torch.count_nonzero(a_pad[0, r:]) == 0 and torch.count_nonzero(b_pad[0, :, r:]) == 0  # exactly zero
    # the real block: GEMMs at the padded shape may block sums differently (rounding only, ~1e-7 per step)
    torch.testing.assert_close(a_pad[0, :r], a_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b_pad[0, :, :r], b_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(256, 64, 4, 128), (256, 128, 8, 64), (1024, 576, 16, 1536)])
def test_lora_delta_has_peft_values_and_gradients(shape, one_thread):
    """Same values and gradients as PEFT's two F.linear calls (bitwise on our CPU BLAS, since the backward
    is spelled in F.linear's GEMM orientation; 1e-6 allows a BLAS that blocks bmm and mm differently)."""
    n, d_in, r, d_out = shape
    g = torch.Generator().manual_seed(1)
    x, a, b, gy = (torch.randn(*s, generator=g) for s in ((n, d_in), (r, d_in), (d_out, r), (n, d_out)))
    leaves = [t.clone().requires_grad_() for t in (x, a, b)]
    _peft_delta(*leaves, 0.5).backward(gy)
    mine = [t.clone().requires_grad_() for t in (x, a, b)]
    y = lora_delta(mine[0][None], mine[1][None], mine[2][None], torch.tensor([0.5]))
    y.backward(gy[None])
    torch.testing.assert_close(y[0], _peft_delta(x, a, b, 0.5), rtol=1e-6, atol=1e-6)
    for ref, got in zip(leaves, mine):
        torch.testing.assert_close(got.grad, ref.grad, rtol=1e-6, atol=1e-6)


def _pack_model(loaded, specs, seed=3):
    """A PEFT model with one adapter per (rank, targets) spec and random non-zero factors and heads."""
    from peft import LoraConfig, get_peft_model

    task = "SEQ_CLS" if "bert" in loaded.name else "CAUSAL_LM"
    names = [f"member{i:02d}" for i in range(len(specs))]
    model = None
    for name, (r, targets) in zip(names, specs):
        cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets), task_type=task)
        model = get_peft_model(loaded.model, cfg, adapter_name=name) if model is None else model
        if name not in model.peft_config:
            model.add_adapter(name, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_" in pname or "modules_to_save" in pname:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval(), names


def _each_alone(model, names, **inputs):
    out = []
    for name in names:
        model.set_adapter(name)
        with torch.no_grad():
            out.append(model(**inputs).logits)
    return out


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_bert"])
def test_stacked_forward_equals_each_members_peft_forward(fixture, request, one_thread):
    loaded = request.getfixturevalue(fixture)
    q, v = ("q_proj", "v_proj") if fixture == "tiny_llama" else ("query", "value")
    model, names = _pack_model(loaded, [(4, loaded.default_targets), (8, loaded.default_targets), (2, (q, v))])
    ids = torch.randint(0, 256, (3, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0  # a padded row
    alone = _each_alone(model, names, input_ids=ids, attention_mask=mask)
    with StackedMembers(model, names), torch.no_grad():
        stacked = model(input_ids=ids.repeat(3, 1), attention_mask=mask.repeat(3, 1)).logits
    for k, ref in enumerate(alone):
        # rounding only: the base GEMMs over 9 rows instead of 3, and LoRA GEMMs at the padded rank; measured
        # ≤ 3e-6 on logits of size ~5 (the largest-rank Llama member bitwise)
        torch.testing.assert_close(stacked[3 * k:3 * (k + 1)], ref, rtol=1e-5, atol=1e-5)
    assert all("forward" not in m.__dict__ for m in model.modules())  # PEFT's forwards are back
    assert torch.equal(_each_alone(model, names[:1], input_ids=ids, attention_mask=mask)[0], alone[0])


def test_members_leaving_the_stack_and_nan_rows_stay_apart(tiny_llama, one_thread):
    model, names = _pack_model(tiny_llama, [(4, tiny_llama.default_targets)] * 3)
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    alone = _each_alone(model, names, input_ids=ids)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if ".member01." in pname:
                p.fill_(float("nan"))  # a diverged member's factors
    stack = StackedMembers(model, names)
    with stack, torch.no_grad():
        out = model(input_ids=ids.repeat(3, 1)).logits
        assert out[2:4].isnan().all() and torch.equal(out[:2], alone[0]) and torch.equal(out[4:], alone[2])
        stack.active = [names[0], names[2]]  # the diverged member leaves the stack
        out = model(input_ids=ids.repeat(2, 1)).logits
    assert torch.equal(out[:2], alone[0]) and torch.equal(out[2:], alone[2])
