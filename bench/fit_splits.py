#!/usr/bin/env python3
"""How the per-task fit holds up over many calibration/evaluation splits of one measuring run.

One split is one draw: a policy that looks right on one evaluation half may be luck. This runs
`triage bench calibrate --per-task` on the same recorded answers under seeds 1..N (each seed
another split, nothing rerun) for each way of choosing, and counts, per task, the splits where
the router is significantly below the best single target on the evaluation half (the paired
95% interval of router − best single is below 0), with the mean overall quality and cost.

    python3 bench/fit_splits.py RUN/measure [N] [-- extra calibrate flags]

Only targets recorded over the whole run belong in the comparison: the shipped demo's encoder
answers are cross-fitted for the default seed's split, so they are left out here (the default
`--small slm`).
"""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIAGE = os.environ.get("TRIAGE", os.path.join(ROOT, "target/release/triage"))


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[: args.index("--")]
    if not args:
        sys.exit(__doc__)
    n = int(args[1]) if len(args) > 1 else 40
    # `bench calibrate` writes RUN/fit.json: work on a copy so the run's own fit stays.
    run = os.path.join(tempfile.mkdtemp(prefix="fit-splits-"), "run")
    shutil.copytree(args[0], run)
    small = extra or ["--small", "slm"]
    ways = {
        "point estimate": ["--target-point"],
        "95% lower bound (default)": [],
        "point + budget 0.5": ["--target-point", "--budget-share", "0.5"],
        "bound + budget 0.5": ["--budget-share", "0.5"],
    }
    print(f"{n} splits of {args[0]}; {' '.join(small)}")
    print(f"{'choosing by':28} {'task-splits below':>18}  {'quality':>8} {'− best':>8} {'cost':>8}  below, by task")
    for name, flags in ways.items():
        below, total, quality, gap, cost = collections.Counter(), 0, [], [], []
        for seed in range(1, n + 1):
            out = subprocess.run(
                [TRIAGE, "bench", "calibrate", run, "--per-task", "--seed", str(seed), "--json"]
                + small + flags,
                capture_output=True, text=True, check=True).stdout
            fit = json.loads(out)
            for t in fit["tasks"]:
                total += 1
                if t["evaluation"]["vs_best"]["difference"]["ci95_high"] < 0:
                    below[t["task"]] += 1
            o = fit["overall"]
            quality.append(o["chosen"]["quality"]["value"])
            gap.append(o["vs_best"]["difference"]["value"])
            cost.append(o["chosen"]["cost_per_request"] / o["llm"]["cost_per_request"])
        mean = lambda v: sum(v) / len(v)
        print(f"{name:28} {sum(below.values()):>8} of {total:<7}  {mean(quality):8.3f} {mean(gap):+8.3f}"
              f" {mean(cost):7.3f}×  {dict(sorted(below.items()))}")
    shutil.rmtree(os.path.dirname(run))


main()
