"""Gather every Best-of-K point: per K, how much the prover's advantages vary across the base
policy's steps (a prover that is too weak or too strong gives advantages near 0)."""
import argparse
import csv
import os
import statistics

ap = argparse.ArgumentParser()
ap.add_argument("--runs", required=True, help="directory with k=<K>/<file> sub-directories")
ap.add_argument("--out", required=True)
a = ap.parse_args()

out = []
for d in sorted(os.listdir(a.runs)):
    if not d.startswith("k="):
        continue
    k = int(d.split("=", 1)[1])
    (name,) = os.listdir(os.path.join(a.runs, d))
    adv = [float(r["a_bok"]) for r in csv.DictReader(open(os.path.join(a.runs, d, name)))]
    out.append((k, len(adv), statistics.fmean(adv), statistics.pstdev(adv), sum(abs(x) > 0.01 for x in adv) / len(adv)))
with open(a.out, "w", newline="") as g:
    w = csv.writer(g)
    w.writerow(["k", "steps", "mean_advantage", "std_advantage", "frac_informative"])
    for row in sorted(out):
        w.writerow([row[0], row[1], round(row[2], 6), round(row[3], 6), round(row[4], 4)])
