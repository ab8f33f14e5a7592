"""Consent: the question and the rules (`consent`), the decision file and what a yes covers
(`decision`), and the state lock with the checks made under it (`lock`)."""
