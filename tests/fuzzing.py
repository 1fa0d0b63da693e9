"""Hypothesis settings shared by the fuzz stage: bounded, repeatable by default, exploratory on request."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

# `make test` runs the same cases every time, so a red build is a regression, never luck. FUZZ_RANDOM=1 draws new
# cases (hypothesis prints a seed to reproduce any failure); FUZZ_SCALE=10 multiplies every example count.
RANDOM = os.environ.get("FUZZ_RANDOM", "") not in ("", "0")
SCALE = max(1, int(os.environ.get("FUZZ_SCALE", "1") or 1))


def fuzz_settings(max_examples: int, *, shrink: bool = True) -> settings:
    """`shrink=False` for a test expected to fail (xfail): the first failing case is proof enough, and fast."""
    return settings(
        max_examples=max_examples * SCALE,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if shrink else [])],
        deadline=None,  # the database answers; no timing belongs in a test
        derandomize=not RANDOM,
        database=None,  # nothing remembered between runs: the build sees the same cases as a fresh checkout
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
