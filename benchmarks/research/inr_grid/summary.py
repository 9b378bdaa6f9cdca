"""Summarise results*.jsonl: PSNR at ratio 500 by log-ratio interpolation between the two runs
(same data/seed/tag, different lambda) that bracket 500 (else nearest, marked '~')."""
import json, math, sys, collections
INR = {"ls": 48.12, "tl": 48.34, "br": 43.11}
H265 = {"ls": 50.68, "tl": 52.71, "br": 44.53}
for fn in sys.argv[1:] or ["results_arm.jsonl"]:
    rows = [json.loads(l) for l in open(fn)]
    g = collections.defaultdict(list)
    for r in rows:
        g[(r["data"], r["seed"], {"arm": "final"}.get(r["tag"], r["tag"]))].append(r)
    print(f"## {fn}")
    for (d, s, t), rs in sorted(g.items()):
        rs.sort(key=lambda r: r["ratio"])
        pts = ", ".join(f"{r['psnr']:.2f}@{r['ratio']:.0f} (lam {r['lam']}, {r['train_s']:.0f}s)"
                        for r in rs)
        lo = [r for r in rs if r["ratio"] <= 500]; hi = [r for r in rs if r["ratio"] >= 500]
        if lo and hi and lo[-1] is not hi[0]:
            a, b = lo[-1], hi[0]
            w = (math.log(500) - math.log(a["ratio"])) / (math.log(b["ratio"]) - math.log(a["ratio"]))
            v = f"{a['psnr'] + w * (b['psnr'] - a['psnr']):.2f}"
        elif lo and hi:
            v = f"{lo[-1]['psnr']:.2f}"
        else:
            v = "~" + f"{min(rs, key=lambda r: abs(math.log(r['ratio'] / 500)))['psnr']:.2f}"
        print(f"{d} seed {s} {t}: @500 {v} | INR {INR[d]} H.265 {H265[d]} | {pts}")
