"""Deciding what to do: fingerprints, decisions with reasons, provider routing."""
