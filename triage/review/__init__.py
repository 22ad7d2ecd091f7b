"""Analysts' decisions fed back into a case: parsed, stored with who/when, applied to the
regenerated outputs, propagated to clusters, and shared through local banks."""
