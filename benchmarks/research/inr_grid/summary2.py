"""Summarise results2.jsonl: per (data, tag, seed) the runs (PSNR@ratio) and the PSNR at
exactly 500x: interpolated in log ratio between two runs bracketing 500x when they exist
('i'), else the run nearest to 500x corrected with a local slope dPSNR/dln(ratio) ('c'):
measured between two runs of the same config/seed where available, else SLOPE below
(brain3d 1.2 from round 1's two lambda runs; light-sheet 2.5, a guess, see README)."""
import json, math, sys, collections
H265 = {"ls": 50.68, "tl": 52.71, "br": 44.53}
PREV = {"ls": {0: 48.49, 1: 47.7}, "br": {0: 43.77, 1: 44.1}, "tl": {0: 45.8, 1: 45.8}}
SLOPE = {"br": 1.2, "ls": 2.5, "tl": 2.5}


def at500(rs, d):
    rs = sorted(rs, key=lambda r: r["ratio"])
    lo = [r for r in rs if r["ratio"] <= 500]; hi = [r for r in rs if r["ratio"] >= 500]
    if lo and hi:
        a, b = lo[-1], hi[0]
        if a is b:
            return a["psnr"], "i"
        w = (math.log(500) - math.log(a["ratio"])) / (math.log(b["ratio"]) - math.log(a["ratio"]))
        return a["psnr"] + w * (b["psnr"] - a["psnr"]), "i"
    n = min(rs, key=lambda r: abs(math.log(r["ratio"] / 500)))
    s = SLOPE[d]
    if len(rs) >= 2:
        s = (rs[0]["psnr"] - rs[-1]["psnr"]) / math.log(rs[-1]["ratio"] / rs[0]["ratio"])
    return n["psnr"] + s * math.log(n["ratio"] / 500), "c"


def main(fn="results2.jsonl"):
    rows = [json.loads(l) for l in open(fn)]
    g = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows:
        g[(r["data"], r["tag"])][r["seed"]].append(r)
    for (d, t), bys in sorted(g.items()):
        cells = []
        for s, rs in sorted(bys.items()):
            v, how = at500(rs, d)
            pts = ", ".join(f"{r['psnr']:.2f}@{r['ratio']:.0f}" for r in sorted(rs, key=lambda r: r["ratio"]))
            ts = "/".join(f"{r['train_s']:.0f}" for r in rs)
            cells.append(f"s{s}: {v:.2f}{how} [{pts}; {ts} s] (prev {PREV[d][s]})")
        print(f"{d} {t:16s} | " + " | ".join(cells) + f" | H.265 {H265[d]}")


if __name__ == "__main__":
    main(*sys.argv[1:])
