"""Tests of the KPI dashboard (domain.md §4): figures against direct counts, drill-down, export, scoping."""
