"""Case report writers (HTML, VICS JSON, CSV)."""
