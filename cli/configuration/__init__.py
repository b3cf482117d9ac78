"""The configuration as the command reads it: ``loading`` reads the file and the environment
into one tree of the models (each beside the code it configures), ``reference`` writes that
tree out for people (the README's reference, an example file)."""
