"""Percentiles for the benches' reports."""


def percentile(values, p):
    """Nearest-rank percentile of `values` (any order; None for none), `p` an integer percent."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, -(-p * len(ordered) // 100) - 1)]
