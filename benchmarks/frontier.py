"""What any poller can do: the optimal plan for the true distribution against the naive poller.

    python benchmarks/frontier.py            # medians 0.2, 0.5, 1, 2 and 5 s; 20 000 draws each

No network, no Gateway: each task's processing time is drawn (lognormal,
sigma 1, seeded) and each poller is followed exactly, so the figures are
what the policies themselves cost, not the machine. For each median:

- the naive poller: a status poll every 0.5 s, then the result (the
  submit included: ``2 + ceil(t / 0.5)`` requests);
- the plan the default `PollPolicy` settles on (`target_lag` 0.25 s: the
  weight from `weight_for` for the true median and sigma);
- the frontier at naive's lag: the requests of the optimal plan (for the
  true distribution, weights from 1/32 up to 4 096) whose lag p50 equals
  naive's, interpolated between the two nearest weights. No poller that
  knows only the distribution spends fewer requests for that lag
  (`_cadence.policy` minimises polls plus weight x lag, the lower convex
  hull of what is possible), so "0.85 x naive's requests at naive's lag"
  is only possible where this ratio is at most 0.85.

Writes ``benchmarks/results/frontier.json`` and prints a markdown table.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import statistics
import sys
from pathlib import Path

from begateway_async._cadence import _standard_policy, weight_for

HERE = Path(__file__).resolve().parent
MEDIANS = (0.2, 0.5, 1.0, 2.0, 5.0)
DRAWS = 20_000
MIN_GAP = 0.05  # the Cadence's shortest gap between two polls, seconds


def follow(times: list[float], weight: float, median: float) -> tuple[float, float]:
    """Requests per job (the submit included) and lag p50 of the plan for ``weight``."""
    grid, after = _standard_policy(1.0, weight)
    requests, lags = [], []
    for t in times:
        here, polls = 0.0, 0
        while here < t:
            following = after[bisect.bisect_right(grid, here / median) - 1] * median
            if not math.isfinite(following):  # past the plan: the backoff's cap
                following = here + 30.0
            here = max(following, here + MIN_GAP)
            polls += 1
        requests.append(1 + polls)
        lags.append(here - t)
    return statistics.fmean(requests), statistics.median(lags)


def main() -> int:
    """Run every median, print the table, write the JSON."""
    rng = random.Random(11)
    weights = [2.0 ** (k / 2) for k in range(-10, 25)]
    rows = []
    for median in MEDIANS:
        times = [median * rng.lognormvariate(0.0, 1.0) for _ in range(DRAWS)]
        naive_requests = statistics.fmean(2 + math.ceil(t / 0.5) for t in times)
        naive_lag = statistics.median(math.ceil(t / 0.5) * 0.5 - t for t in times)
        chosen = weight_for(1.0, 0.25 / median)
        default_requests, default_lag = follow(times, chosen, median)
        curve = [(w, *follow(times, w, median)) for w in weights]
        at_naive = math.nan
        for (_, r1, l1), (_, r2, l2) in itertools.pairwise(curve):
            if l1 >= naive_lag >= l2:
                share = (l1 - naive_lag) / (l1 - l2) if l1 > l2 else 0.0
                at_naive = r1 + share * (r2 - r1)
                break
        rows.append(
            {
                "median_s": median,
                "naive_requests": naive_requests,
                "naive_lag_p50_s": naive_lag,
                "default_weight": chosen,
                "default_requests": default_requests,
                "default_lag_p50_s": default_lag,
                "frontier_requests_at_naive_lag": at_naive,
            }
        )
    print(
        "| median s | naive req/job | naive lag p50 s | default w | default req/job (x naive) "
        "| default lag p50 s | optimal req/job at naive's lag (x naive) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        n = r["naive_requests"]
        print(
            f"| {r['median_s']:g} | {n:.2f} | {r['naive_lag_p50_s']:.3f} | "
            f"{r['default_weight']:.2f} | {r['default_requests']:.2f} "
            f"({r['default_requests'] / n:.2f}) | {r['default_lag_p50_s']:.3f} | "
            f"{r['frontier_requests_at_naive_lag']:.2f} "
            f"({r['frontier_requests_at_naive_lag'] / n:.2f}) |"
        )
    out = HERE / "results" / "frontier.json"
    out.write_text(json.dumps({"draws": DRAWS, "sigma": 1.0, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
