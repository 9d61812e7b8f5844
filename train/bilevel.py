"""Bi-level asymptotic convergence: how the prompt (upper) and fusion (lower) updates alternate.

Problem (PromptFusion's bi-level view, solved the BDA way -- Liu et al.'s Bilevel Descent
Aggregation, used across that group's fusion papers):

    min_x  F(x, y*(x))        x: the learnable prompt context       (upper level)
    s.t.   y*(x) in argmin_y f(y)   y: the fusion network's weights  (lower level)

    f(y)    = fusion loss (intensity / gradient / SSIM ..., :class:`losses.FusionLoss`)
    F(x, y) = prompt loss: with prompts x, fused images of y read as "positive"

Rather than solving the lower level exactly for every x, step k of Stage II does

    1. lower step:  y <- y - lr_y * [ (1 - a_k) * grad_y f(y)  +  a_k * w * grad_y F(x_k, y) ]
    2. upper step:  x <- x - lr_x * grad_x F_prompt(x, y_{k})          (every ``upper_every`` steps)

with the aggregation (coupling) weight

    a_k = alpha0 / (1 + k / half_life)          (a_0 = alpha0, a_half_life = alpha0 / 2, a_k -> 0)

Equivalently y follows the single-level problems f + mu_k F with mu_k = a_k / (1 - a_k) -> 0:
early on the prompts steer the fusion network strongly; as k grows the lower level
converges to a minimiser of f selected by F, which is the bi-level solution BDA
converges to (sum a_k = infinity, a_k -> 0).  The upper step in 2. differentiates the
prompt objective through the *current* fused images y_k (no unrolled lower-level
history: the cheap first-order variant).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BdaSchedule:
    alpha0: float = 0.5
    half_life: int = 1000
    upper_every: int = 1

    def __post_init__(self):
        if not 0.0 <= self.alpha0 < 1.0:
            raise ValueError("alpha0 must lie in [0, 1): the lower level must keep some weight on its own loss")
        if self.half_life < 1 or self.upper_every < 1:
            raise ValueError("half_life and upper_every must be >= 1")

    def alpha(self, step: int) -> float:
        """Coupling weight a_k of the upper objective in the lower-level direction."""
        return self.alpha0 / (1.0 + step / self.half_life)

    def lower_weights(self, step: int) -> tuple[float, float]:
        """(weight of f, weight of F) in the lower-level loss at ``step``."""
        a = self.alpha(step)
        return 1.0 - a, a

    def upper_step_due(self, step: int) -> bool:
        return step % self.upper_every == 0
