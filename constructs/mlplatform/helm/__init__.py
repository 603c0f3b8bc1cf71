"""The platform as a Helm chart (dist/helm/<platform>/), made from the constructs' output for every
environment."""

from mlplatform.helm.chart import (
    HELM_DIR,
    SWITCHES,
    Variant,
    chart_folder,
    render_chart,
    spec_values,
    switches_of,
    values_key,
    values_name,
)

__all__ = [
    "HELM_DIR",
    "SWITCHES",
    "Variant",
    "chart_folder",
    "render_chart",
    "spec_values",
    "switches_of",
    "values_key",
    "values_name",
]
