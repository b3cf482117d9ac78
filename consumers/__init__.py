"""The shared sink runner and one small module per sink (issues 5 and 6)."""
