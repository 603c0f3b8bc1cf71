"""Checks and packages the platform's Helm chart (dist/helm/<platform>/): `python -m helmchart check`,
`python -m helmchart package`."""
