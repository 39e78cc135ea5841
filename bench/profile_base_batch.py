"""Where a CPU pack's time goes: the frozen MiniLM base's forward+backward at 8 vs 64 rows (one member vs 8).

    python bench/profile_base_batch.py
"""
import time, torch
torch.set_num_threads(2)
from lorascale.models import load_model
m = load_model("minilm-l6", num_labels=6).model
m.train()
for p in m.parameters(): p.requires_grad_(False)
def t(bs, n=4):
    x = torch.randint(1000, 2000, (bs, 128)); y = torch.randint(0, 6, (bs,))
    for p in m.classifier.parameters(): p.requires_grad_(True)
    out = m(input_ids=x, labels=y); out.loss.backward()
    t0 = time.perf_counter()
    for _ in range(n):
        out = m(input_ids=x, labels=y); out.loss.backward()
    return (time.perf_counter() - t0) / n
a, b = t(8), t(64)
print(f"frozen base fwd+bwd: batch 8: {a*1e3:.0f} ms; batch 64: {b*1e3:.0f} ms = {b/a:.2f}x of 8x the rows (8.0 = linear)")
