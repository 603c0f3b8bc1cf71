"""Builds the model repository reproducibly from data and weights the project has."""
