"""The settings every Hypothesis state machine of the suite runs under, and the knobs to hunt.

A committed machine runs a fixed, derandomized set of examples (the same every
run, so the suite stays deterministic and its time known). Three environment
variables turn any of them into a hunt:

- ``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` replace the number of
  examples and the steps of each;
- ``KRUISE_MACHINE_HUNT=1`` draws at random instead, skips shrinking and reports
  each distinct failure (a shrink of a machine driving real servers can run for
  many minutes; a failure is shown with the steps of the example as it ran, and
  with the ``@reproduce_failure`` line that replays it exactly: the steps alone
  do not show the draws a rule makes with ``st.data()``).

For instance ``KRUISE_MACHINE_HUNT=1 KRUISE_MACHINE_EXAMPLES=200 pytest
tests/cluster/test_sandboxclaim_machine.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

__all__ = ["machine_settings"]


def machine_settings(examples: int, steps: int, *, shrink: bool = True) -> settings:
    """``examples`` derandomized examples of ``steps`` steps each, or what the knobs say.

    ``shrink=False`` leaves out shrinking in the committed run too (a machine
    whose every step is a slow real call). No deadline and no health check:
    a machine's examples are slow by nature, and a shared machine slower still.
    """
    hunting = bool(os.environ.get("KRUISE_MACHINE_HUNT"))
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if shrink and not hunting:
        phases += [Phase.shrink, Phase.explain]
    return settings(
        max_examples=int(os.environ.get("KRUISE_MACHINE_EXAMPLES", examples)),
        stateful_step_count=int(os.environ.get("KRUISE_MACHINE_STEPS", steps)),
        deadline=None,
        derandomize=not hunting,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=hunting,
        print_blob=hunting,
        phases=phases,
    )
