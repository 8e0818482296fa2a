"""The evaluation protocol of DESIGN.md §6: priors, metrics, reports."""
