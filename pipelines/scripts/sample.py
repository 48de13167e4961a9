"""Sample seed responses from the base policy mu_gamma: one CSV row per response."""
import argparse
import csv

import planted

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, required=True)
ap.add_argument("--gamma", type=float, required=True)
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--out", required=True)
a = ap.parse_args()

with open(a.out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["response", "tokens", "correct"])
    for i in range(a.n):
        seq = planted.sample(planted.rng_for(a.seed, i), a.gamma)
        w.writerow([i, " ".join(map(str, seq)), planted.reward(seq)])
