"""Commands over a whole project: review, report, lock merges, upkeep, summaries, graph."""
