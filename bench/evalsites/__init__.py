"""Labelled fixture sites for bench/relevance_eval.py: four realistic, messy websites, each
with prompts and the exact set of documents that answer them.

- port_ellery: an English town council (minutes, agendas, budgets, planning applications)
- aldmere: a company's investor-relations site (results, reports, presentations, ESG)
- lindenau: a German municipality (Niederschriften, Haushaltspläne, Bekanntmachungen)
- saint_aubin: a French commune (procès-verbaux, budget primitif, arrêtés)

Each site module keeps its labels beside its content, with why each label holds. Everything
is built once at import, deterministically; nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

from evalsites import aldmere, lindenau, port_ellery, saint_aubin
from evalsites.site import Label, Site, make_app

SITES: tuple[Site, ...] = (port_ellery.SITE, aldmere.SITE, lindenau.SITE, saint_aubin.SITE)

__all__ = ["SITES", "Label", "Site", "make_app"]
