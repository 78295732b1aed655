"""Progress inside one optimizer step, and the run's time estimate.

The 42M and 110M presets take 524,288 tokens per step: on a laptop CPU one step is minutes, and
a bar that moves only between steps looks dead. The meter reports micro-batches as they finish
(for the bar, or as a line every `line_every` seconds when stderr is no terminal) and, once a
step has been timed after the warm-up one, estimates the time per step and for the whole run.
"""

from __future__ import annotations

import time


def human_duration(seconds: float) -> str:
    """3.2 s, 4 min 10 s, 5 h 20 min, 3 d 4 h."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, m = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {m} min"
    days, h = divmod(hours, 24)
    return f"{days} d {h} h"


class StepMeter:
    """Times the micro-batches of each step. `micro_batch_done` answers the bar's text (or None
    when too little time passed to be worth a refresh); `estimate` answers one line, once.

    The first micro-batch of a run is warm-up (allocation, kernel choice) and times nothing. On
    a step of three or more micro-batches the second one gives the estimate, minutes before the
    step ends; otherwise the second whole step does."""

    def __init__(
        self, micro_batches: int, tokens_per_micro: int, steps_left: int, refresh: float = 0.5
    ) -> None:
        self.micro_batches = micro_batches
        self.tokens_per_micro = tokens_per_micro
        self.steps_left = steps_left
        self.refresh = refresh
        self.steps_done = 0
        self.seconds_per_step: float | None = None
        self._estimated = False
        self.step_start = self.last_micro = self.last_shown = time.perf_counter()

    def step_started(self) -> None:
        self.step_start = self.last_micro = time.perf_counter()

    def micro_batch_done(self, done: int) -> str | None:
        """`done` micro-batches of this step have finished."""
        now = time.perf_counter()
        first_step = self.steps_done == 0
        if first_step and done == 2 and self.micro_batches >= 3:
            self.seconds_per_step = (now - self.last_micro) * self.micro_batches
        self.last_micro = now
        if done == self.micro_batches or now - self.last_shown < self.refresh:
            return None
        self.last_shown = now
        tok_s = self.tokens_per_micro * done / max(now - self.step_start, 1e-9)
        return f"micro-batch {done}/{self.micro_batches}, {tok_s:,.0f} tok/s"

    def step_done(self) -> None:
        """The optimizer step finished."""
        self.steps_done += 1
        self.steps_left -= 1
        if self.steps_done == 2 and self.seconds_per_step is None:
            self.seconds_per_step = time.perf_counter() - self.step_start

    def estimate(self) -> str | None:
        if self._estimated or self.seconds_per_step is None or self.steps_left <= 0:
            return None
        self._estimated = True
        per_step = self.seconds_per_step
        steps = self.steps_left  # the step under way counts as still to come
        tok_s = self.tokens_per_micro * self.micro_batches / per_step
        return (
            f"about {human_duration(per_step)} per step ({tok_s:,.0f} tok/s on this device): "
            f"{human_duration(per_step * steps)} for the {steps:,} steps left"
        )
