"""The evidence scan: walk, hash, match, cluster, score and write the case outputs."""
