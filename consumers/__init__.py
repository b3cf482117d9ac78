"""The shared sink runner and one small module per sink."""
