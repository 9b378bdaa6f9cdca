"""Summarise results3.jsonl (round 3): per (data, tag, seed) the runs (PSNR@ratio), the PSNR at
500x ('i' = interpolated in log ratio between two runs bracketing 500x; 'c' = nearest run
corrected with a slope dPSNR/dln(ratio): measured between the runs of the same config/seed
when there are two, else SLOPE), and per run the difference to round 2's base (soft + batch
32768, tag soft_b32k in results2.jsonl) *at the run's own ratio*, interpolated in log ratio on
the base's runs of the same seed (extrapolated with the end slope outside their range: '*')."""
import json, math, sys, collections
from summary2 import at500, H265

BASE = "soft_b32k"


def base_curve(rows, d, s):
    pts = sorted((r["ratio"], r["psnr"]) for r in rows
                 if r["data"] == d and r["seed"] == s and r["tag"] == BASE)
    return pts


def base_at(pts, ratio):
    if len(pts) < 2:
        return None, ""
    lr = math.log(ratio)
    for (r0, p0), (r1, p1) in zip(pts[:-1], pts[1:]):
        if r0 <= ratio <= r1:
            return p0 + (p1 - p0) * (lr - math.log(r0)) / (math.log(r1) - math.log(r0)), ""
    (r0, p0), (r1, p1) = (pts[0], pts[1]) if ratio < pts[0][0] else (pts[-2], pts[-1])
    return p0 + (p1 - p0) * (lr - math.log(r0)) / (math.log(r1) - math.log(r0)), "*"


def main(fn="results3.jsonl", base_fn="results2.jsonl"):
    rows = [json.loads(l) for l in open(fn)]
    brows = [json.loads(l) for l in open(base_fn)]
    g = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows:
        g[(r["data"], r["tag"])][r["seed"]].append(r)
    for (d, t), bys in sorted(g.items()):
        for s, rs in sorted(bys.items()):
            v, how = at500(rs, d)
            bc = base_curve(brows, d, s)
            runs = []
            for r in sorted(rs, key=lambda r: r["ratio"]):
                b, flag = base_at(bc, r["ratio"])
                dd = f" ({r['psnr'] - b:+.2f}{flag})" if b is not None else ""
                runs.append(f"{r['psnr']:.2f}@{r['ratio']:.0f}{dd}")
            ts = "/".join(f"{r['train_s']:.0f}" for r in rs)
            print(f"{d} {t:14s} s{s}: {v:.2f}{how} | {', '.join(runs)} | {ts} s | H.265 {H265[d]}")


if __name__ == "__main__":
    main(*sys.argv[1:])
