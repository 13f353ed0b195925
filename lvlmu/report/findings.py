"""Result sentences written from the results: the prose a chapter closes with, so that no number, ranking or
verdict in it is typed by hand (tests/test_study.py renders the PUBG and claims pages from two result sets)."""
from __future__ import annotations

import pandas as pd

from .claims import LEAK_BOUND, LEVELS, RETAIN_DROP, baselines_of, described, leak_interval, pct
from .intervals import FAILS, HOLDS, SHARE, interval, verdict

ANSWER_CLASSES = ("refusal", "hallucinated", "degenerate", "informative")


def _names(methods: list[str]) -> str:
    return ", ".join(f"**{m}**" for m in methods) if methods else "none"


def pubg_findings(frame: pd.DataFrame, base: dict, oracle: dict, method: str = "pubg") -> str:
    """Markdown: what the PUBG chapter's results show, each statement computed from `frame` (the runs), `base` and
    `oracle` (their headline figures), with intervals over the chapter's replicates."""
    split = frame[frame["setting"] == "split"]
    methods = [method, *baselines_of(frame, method)]
    desirable = {m: interval(split[split["method"] == m], "task: desirable", LEVELS, within=SHARE) for m in methods}
    mostly = [m for m, v in desirable.items() if verdict(v, 0.5, "above") == HOLDS]
    best = max(methods[1:], key=lambda m: desirable[m].estimate, default=None)
    lines = [f"**What this shows.** Methods whose answers to the task are mostly desirable (the interval of the desirable "
             f"rate above 50%): {_names(mostly)}. {method}'s desirable rate is {described(desirable[method])}"
             + (f"; the best baseline's ({best}) {described(desirable[best])}." if best else ".")]
    stopped = []
    for m in methods[1:]:
        runs = split[split["method"] == m]
        if verdict(leak_interval(runs, "name leak: unseen images"), LEAK_BOUND, "below") == HOLDS:
            shares = {c: runs[f"task: {c}"].mean() for c in ANSWER_CLASSES}
            top = max(shares, key=shares.get)
            stopped.append(f"{m} mostly with *{top}* answers ({pct(shares[top])})")
    lines.append(f"Baselines that stop the leak (the interval of their name leak below {LEAK_BOUND:.0%}) answer the task "
                 + ("instead: " + "; ".join(stopped) + "." if stopped else "with: none of them stops it."))
    runs = split[split["method"] == method]
    retain, leak = interval(runs, "retain names", LEVELS, within=SHARE), leak_interval(runs, "name leak: unseen images")
    kept = verdict(retain, base["retain names"] - RETAIN_DROP, "above")
    trade = {HOLDS: "keeps", FAILS: "does not keep"}.get(kept, "may or may not keep (the interval straddles the bound)")
    lines.append(f"{method} {trade} retain recognition within {RETAIN_DROP * 100:.0f} points of the base's "
                 f"({pct(base['retain names'])}): {described(retain)}, at a name leak of {described(leak)}. "
                 f"Its runs range from {pct(runs['name leak: unseen images'].min())} to {pct(runs['name leak: unseen images'].max())} "
                 f"in leak and from {pct(runs['retain names'].min())} to {pct(runs['retain names'].max())} in retain recognition.")
    open_query = {c: oracle.get(f"{c}: open query") for c in ANSWER_CLASSES if oracle.get(f"{c}: open query") is not None}
    if open_query:
        top = max(open_query, key=open_query.get)
        lines.append(f"The oracle's desirable rate is {pct(oracle.get('task: desirable'))}; to the open query it mostly gives "
                     f"*{top}* answers ({pct(open_query[top])}). A method closer to it in the desirable rate is closer to "
                     f"good answers only where the oracle's own answers are good.")
    return "\n\n".join(lines)
