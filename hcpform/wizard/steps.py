"""Pure navigation rules of the wizard: order, next, previous, first incomplete step."""

from __future__ import annotations

REVIEW = "review"


def first_incomplete(slugs: list[str], completed: list[str]) -> str:
    """Return the first step not completed, or the review page when all are."""
    done = set(completed)
    return next((s for s in slugs if s not in done), REVIEW)


def may_visit(slugs: list[str], completed: list[str], slug: str) -> bool:
    """Return True when a step is at or before the first incomplete one."""
    target = first_incomplete(slugs, completed)
    if slug == REVIEW:
        return target == REVIEW
    if slug not in slugs:
        return False
    return target == REVIEW or slugs.index(slug) <= slugs.index(target)


def next_slug(slugs: list[str], slug: str) -> str:
    """Return the step after `slug` (the review page after the last)."""
    i = slugs.index(slug)
    return slugs[i + 1] if i + 1 < len(slugs) else REVIEW


def prev_slug(slugs: list[str], slug: str) -> str | None:
    """Return the step before `slug`, or None for the first."""
    if slug == REVIEW:
        return slugs[-1] if slugs else None
    i = slugs.index(slug)
    return slugs[i - 1] if i > 0 else None


def step_number(slugs: list[str], slug: str) -> int:
    """Return the 1-based position of a step."""
    return slugs.index(slug) + 1
