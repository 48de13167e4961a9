"""Monte-Carlo Q-values of every prefix of every seed response under the base policy, with
the exact value from dynamic programming beside each estimate."""
import argparse
import csv

import planted

ap = argparse.ArgumentParser()
ap.add_argument("--samples", required=True)
ap.add_argument("--gamma", type=float, required=True)
ap.add_argument("--n-mc", type=int, required=True)
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--out", required=True)
a = ap.parse_args()

with open(a.samples) as f, open(a.out, "w", newline="") as g:
    w = csv.writer(g)
    w.writerow(["response", "step", "q_mc", "q_exact"])
    for row in csv.DictReader(f):
        seq = [int(t) for t in row["tokens"].split()]
        for h in range(len(seq) + 1):
            prefix = seq[:h]
            hits = sum(planted.reward(planted.sample(planted.rng_for(a.seed, row["response"], h, j), a.gamma, prefix)) for j in range(a.n_mc))
            w.writerow([row["response"], h, hits / a.n_mc, round(planted.q_exact(prefix, a.gamma), 6)])
