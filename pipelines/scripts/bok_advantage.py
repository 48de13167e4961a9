"""Advantages under the Best-of-K prover by the closed form (no new rollouts):
Q_BoK = 1 - (1 - Q)^K, A_BoK(s_h, a_h) = (1 - Q_{h-1})^K - (1 - Q_h)^K."""
import argparse
import csv

ap = argparse.ArgumentParser()
ap.add_argument("--q", required=True)
ap.add_argument("--k", type=int, required=True)
ap.add_argument("--out", required=True)
a = ap.parse_args()

rows = list(csv.DictReader(open(a.q)))
with open(a.out, "w", newline="") as g:
    w = csv.writer(g)
    w.writerow(["response", "step", "q", "q_bok", "a_bok"])
    prev = {}
    for r in rows:
        q = float(r["q_mc"])
        resp, step = r["response"], int(r["step"])
        if step > 0:
            qp = prev[resp]
            w.writerow([resp, step, q, round(1 - (1 - q) ** a.k, 6), round((1 - qp) ** a.k - (1 - q) ** a.k, 6)])
        prev[resp] = q
