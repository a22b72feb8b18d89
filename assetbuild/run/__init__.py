"""Doing it: the executor, derived-image transforms, progress events, watch."""
