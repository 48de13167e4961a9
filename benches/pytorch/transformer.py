"""PyTorch CPU reference measurement for the small decoder-only transformer.

This script is the PyTorch side of a speed comparison with the burn (Rust)
implementation of the same model. It measures, in float32 on the CPU:

* training throughput: batches of 32 random sequences of 128 token ids
  (seeded), next-token cross-entropy, Adam (lr 1e-3). The model is fed all 128
  positions and the loss is taken over the 127 positions that have a next
  token, so ``train_tokens_per_s = 32 * 127 * steps / seconds``. Three warm-up
  steps are run first and are not timed.
* sampling throughput: batch 256, a one-token prompt (BOS id 1), 64 new
  tokens drawn by multinomial sampling from softmax(logits / 1.0), under
  ``torch.inference_mode()``:
    - ``sample_kv_cache_tokens_per_s``: a preallocated per-layer key/value
      cache of shape [B, H, 65, 32] is written in place at each step and the
      new query attends over the filled part only;
    - ``sample_no_cache_tokens_per_s``: no cache; the whole prefix is run
      through the model at every step and the last position's logits are used.
  Both report ``256 * 64 / seconds``; one full sampling run is done first as a
  warm-up.

The model: vocabulary 100, context 128, d_model 128, 4 layers, 4 heads (head
dim 32), d_ff 512, pre-LayerNorm blocks (x = x + attn(ln1(x));
x = x + mlp(ln2(x))), GELU in its tanh form (as the Rust model), learned token and positional
embeddings, a final LayerNorm and an untied output Linear(128 -> 100) with
bias. Every Linear has a bias; q, k, v and o are separate Linear(128, 128)
projections. Causal attention is written out by hand
(q @ k^T / sqrt(dh), mask, softmax, @ v). The figures marked ``_sdpa`` are
extra lines that use ``F.scaled_dot_product_attention`` instead and are not
the main numbers.

Run (stdlib + torch only):

    /path/to/python benches/pytorch/transformer.py [--threads 2]

Options: ``--threads N`` (torch.set_num_threads, default 2), ``--steps N``
(timed training steps, default 20), ``--no-sdpa`` (skip the extra lines).
Each figure is printed on its own line as ``name value``.
"""

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 100
CONTEXT = 128
D_MODEL = 128
N_LAYERS = 4
N_HEADS = 4
HEAD_DIM = D_MODEL // N_HEADS
D_FF = 512

TRAIN_BATCH = 32
TRAIN_WARMUP = 3
LR = 1e-3

SAMPLE_BATCH = 256
SAMPLE_NEW = 64
BOS = 1
TEMPERATURE = 1.0


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(D_MODEL, D_MODEL)
        self.k = nn.Linear(D_MODEL, D_MODEL)
        self.v = nn.Linear(D_MODEL, D_MODEL)
        self.o = nn.Linear(D_MODEL, D_MODEL)
        self.use_sdpa = False

    def _heads(self, x):
        b, t, _ = x.shape
        return x.view(b, t, N_HEADS, HEAD_DIM).transpose(1, 2)  # [B, H, T, dh]

    def forward(self, x, cache=None, pos=0):
        """x: [B, T, D]. With ``cache=(k_cache, v_cache)`` ([B, H, 65, dh]
        each), the new keys/values are written at positions pos..pos+T-1 and
        attention covers positions 0..pos+T-1."""
        b, t, _ = x.shape
        q = self._heads(self.q(x))
        k = self._heads(self.k(x))
        v = self._heads(self.v(x))
        if cache is not None:
            k_cache, v_cache = cache
            k_cache[:, :, pos:pos + t] = k
            v_cache[:, :, pos:pos + t] = v
            k = k_cache[:, :, :pos + t]
            v = v_cache[:, :, :pos + t]
        s = k.shape[2]
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=(t > 1))
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(HEAD_DIM)  # [B, H, t, s]
            if t > 1:
                # query i (absolute position pos+i) may see keys 0..pos+i
                mask = torch.ones(t, s, dtype=torch.bool).tril(diagonal=s - t)
                att = att.masked_fill(~mask, float("-inf"))
            att = torch.softmax(att, dim=-1)
            y = att @ v  # [B, H, t, dh]
        y = y.transpose(1, 2).reshape(b, t, D_MODEL)
        return self.o(y)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(D_MODEL)
        self.attn = Attention()
        self.ln2 = nn.LayerNorm(D_MODEL)
        self.fc1 = nn.Linear(D_MODEL, D_FF)
        self.fc2 = nn.Linear(D_FF, D_MODEL)

    def forward(self, x, cache=None, pos=0):
        x = x + self.attn(self.ln1(x), cache, pos)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))  # tanh form, as in Rust
        return x


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, D_MODEL)
        self.pos = nn.Embedding(CONTEXT, D_MODEL)
        self.blocks = nn.ModuleList(Block() for _ in range(N_LAYERS))
        self.ln_f = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, VOCAB)

    def set_sdpa(self, flag):
        for blk in self.blocks:
            blk.attn.use_sdpa = flag

    def forward(self, idx, caches=None, pos=0):
        t = idx.shape[1]
        positions = torch.arange(pos, pos + t)
        x = self.tok(idx) + self.pos(positions)
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if caches is None else caches[i], pos)
        return self.head(self.ln_f(x))


def measure_train(model, steps, seed):
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, VOCAB, (TRAIN_WARMUP + steps, TRAIN_BATCH, CONTEXT), generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()

    def step(batch):
        logits = model(batch)  # [B, 128, V]
        loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, VOCAB), batch[:, 1:].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(TRAIN_WARMUP):
        step(data[i])
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(data[TRAIN_WARMUP + i])
    loss.item()
    dt = time.perf_counter() - t0
    return TRAIN_BATCH * (CONTEXT - 1) * steps / dt, dt


def sample_kv_cache(model, g):
    caches = [
        (
            torch.empty(SAMPLE_BATCH, N_HEADS, SAMPLE_NEW + 1, HEAD_DIM),
            torch.empty(SAMPLE_BATCH, N_HEADS, SAMPLE_NEW + 1, HEAD_DIM),
        )
        for _ in range(N_LAYERS)
    ]
    out = torch.empty(SAMPLE_BATCH, SAMPLE_NEW + 1, dtype=torch.long)
    out[:, 0] = BOS
    cur = out[:, :1]
    for i in range(SAMPLE_NEW):
        logits = model(cur, caches, pos=i)[:, -1]
        probs = torch.softmax(logits / TEMPERATURE, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=g)
        out[:, i + 1:i + 2] = nxt
        cur = nxt
    return out


def sample_no_cache(model, g):
    out = torch.empty(SAMPLE_BATCH, SAMPLE_NEW + 1, dtype=torch.long)
    out[:, 0] = BOS
    for i in range(SAMPLE_NEW):
        logits = model(out[:, :i + 1])[:, -1]
        probs = torch.softmax(logits / TEMPERATURE, dim=-1)
        out[:, i + 1:i + 2] = torch.multinomial(probs, 1, generator=g)
    return out


def measure_sample(model, fn, seed):
    model.eval()
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        fn(model, g)  # warm-up
        t0 = time.perf_counter()
        fn(model, g)
        dt = time.perf_counter() - t0
    return SAMPLE_BATCH * SAMPLE_NEW / dt, dt


def check_cache_matches(model):
    """The cached and uncached paths must give the same logits."""
    model.eval()
    g = torch.Generator().manual_seed(123)
    idx = torch.randint(0, VOCAB, (4, 10), generator=g)
    caches = [
        (torch.empty(4, N_HEADS, 11, HEAD_DIM), torch.empty(4, N_HEADS, 11, HEAD_DIM))
        for _ in range(N_LAYERS)
    ]
    with torch.inference_mode():
        full = model(idx)
        inc = torch.cat([model(idx[:, i:i + 1], caches, pos=i) for i in range(10)], dim=1)
    return (full - inc).abs().max().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-sdpa", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = Transformer()
    n_params = sum(p.numel() for p in model.parameters())

    print(f"torch_version {torch.__version__}")
    print(f"threads {torch.get_num_threads()}")
    print(f"params {n_params}")
    print("gelu tanh")
    print(f"cache_vs_full_max_abs_diff {check_cache_matches(model):.2e}")

    tps, dt = measure_train(model, args.steps, args.seed + 1)
    print(f"train_tokens_per_s {tps:.0f}")
    print(f"train_seconds_{args.steps}_steps {dt:.3f}")
    tps, dt = measure_sample(model, sample_kv_cache, args.seed + 2)
    print(f"sample_kv_cache_tokens_per_s {tps:.0f}")
    tps, dt = measure_sample(model, sample_no_cache, args.seed + 3)
    print(f"sample_no_cache_tokens_per_s {tps:.0f}")

    if not args.no_sdpa:
        model.set_sdpa(True)
        tps, _ = measure_train(model, args.steps, args.seed + 1)
        print(f"train_tokens_per_s_sdpa {tps:.0f}")
        tps, _ = measure_sample(model, sample_kv_cache, args.seed + 2)
        print(f"sample_kv_cache_tokens_per_s_sdpa {tps:.0f}")
        tps, _ = measure_sample(model, sample_no_cache, args.seed + 3)
        print(f"sample_no_cache_tokens_per_s_sdpa {tps:.0f}")
        model.set_sdpa(False)


if __name__ == "__main__":
    main()
