"""The planted-subsequence task of Setlur et al. (2024), section 3.

Tokens 0..14, sequences of length 10, end token 14 masks what follows; reward 1 iff the planted
subsequence y* = [3, 6, 0, 3, 5] appears contiguously before the end token. The prover mu_gamma
puts weight gamma on the next token of y* (after the longest suffix that matches a prefix of
y*) and weight 1 on every other token. Exact values come from dynamic programming over
(position, matched length), so the Monte-Carlo estimates can be checked against them.
"""

import functools
import random

VOCAB = 15
END = 14
LENGTH = 10
TARGET = (3, 6, 0, 3, 5)


def advance(k, tok):
    """Matched length after appending tok, when the last k tokens match TARGET[:k] (KMP)."""
    seq = TARGET[:k] + (tok,)
    for m in range(min(len(seq), len(TARGET)), 0, -1):
        if seq[-m:] == TARGET[:m]:
            return m
    return 0


def probs(k, gamma):
    """Next-token distribution of mu_gamma in matched state k."""
    w = [1.0] * VOCAB
    if k < len(TARGET):
        w[TARGET[k]] = gamma
    z = sum(w)
    return [x / z for x in w]


@functools.lru_cache(maxsize=None)
def value(pos, k, gamma):
    """Probability that mu_gamma ends correct from `pos` tokens emitted, matched length k."""
    if k == len(TARGET):
        return 1.0
    if pos == LENGTH:
        return 0.0
    p = probs(k, gamma)
    return sum(p[t] * (0.0 if t == END else value(pos + 1, advance(k, t), gamma)) for t in range(VOCAB))


def state(prefix):
    """(matched length, ended) after a prefix."""
    k = 0
    for t in prefix:
        if t == END:
            return k, True
        if k == len(TARGET):
            return k, False
        k = advance(k, t)
    return k, False


def q_exact(prefix, gamma):
    k, ended = state(prefix)
    if k == len(TARGET):
        return 1.0
    if ended:
        return 0.0
    return value(len(prefix), k, gamma)


def sample(rng, gamma, prefix=()):
    seq = list(prefix)
    k, ended = state(seq)
    while len(seq) < LENGTH and not ended and k < len(TARGET):
        t = rng.choices(range(VOCAB), weights=probs(k, gamma))[0]
        seq.append(t)
        if t == END:
            ended = True
        else:
            k = advance(k, t)
    return seq


def reward(seq):
    return 1 if state(seq)[0] == len(TARGET) else 0


def rng_for(seed, *items):
    """A generator derived from the seed and an item index, independent of processing order."""
    return random.Random(f"{seed}:" + ":".join(str(i) for i in items))
