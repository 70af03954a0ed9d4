"""bench/bench_stats.py: the statistics and number formats bench/summarize.py
writes its figures with: medians, spreads (median, min, max, quartiles) and
their text, and a target's verdict."""
import statistics


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1],
            "q1": q[0], "q3": q[2], "n": len(xs)}


def fmt_s(sp, scale=1e-9, unit="s", digits=3):
    if not sp:
        return "n/a"
    f = f"{{:.{digits}f}}"
    return (f"{f.format(sp['median'] * scale)} {unit} "
            f"({f.format(sp['min'] * scale)}..{f.format(sp['max'] * scale)})")


def fmt_r(sp, digits=2):
    if not sp:
        return "n/a"
    f = f"{{:.{digits}f}}"
    return f"{f.format(sp['median'])} ({f.format(sp['min'])}..{f.format(sp['max'])})"


def verdict(ok):
    return "met" if ok else "MISSED"


def verdict_vs(value, target, at_most=True, unit="", digits=2):
    """met, or MISSED and by how much: the distance to the target and the
    measured figure as a multiple (at most) or a share (at least) of it."""
    if value is None:
        return "MISSED (not measured)"
    if value <= target if at_most else value >= target:
        return "met"
    f = f"{{:.{digits}f}}"
    if at_most:
        return f"MISSED by {f.format(value - target)}{unit} ({value / target:.2f}x the target)"
    return f"MISSED by {f.format(target - value)}{unit} ({100 * value / target:.0f}% of the target)"
