"""Knative's own validation of the serverless render (`runtime: kserve-serverless`).

No KServe or Knative controller runs here, so this does by hand the one step between them that matters for
admission: `knative_service` makes, from a Serverless InferenceService, the Knative Service KServe v0.15.2
would (pkg/controller/v1beta1/inferenceservice/reconcilers/knative/ksvc_reconciler.go: the predictor's pod
spec as the revision's, its annotations less KServe's disallowed list, the autoscaling annotations KServe
writes from minReplicas, maxReplicas and scaleMetric, the canary as two traffic targets). `validate` then runs
knative-validate (tools/knative/, built by tools/setup/knative-tool.sh from knative.dev/serving at
KNATIVE_SERVING_VERSION): Knative's own defaulting and validation, the code its admission webhook runs, with
the config-features flags given.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from testcluster.errors import ClusterTestError
from testcluster.versions import REPO_ROOT

VALIDATOR = REPO_ROOT / ".tools" / "bin" / "knative-validate"
#: ComponentExtensionSpec's fields (KServe's, beside the pod spec in a predictor): not the revision's pod.
EXTENSION_FIELDS = frozenset(
    {
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "scaleMetricType",
        "autoScaling",
        "containerConcurrency",
        "timeout",
        "canaryTrafficPercent",
        "logger",
        "batcher",
        "labels",
        "annotations",
        "deploymentStrategy",
    }
)
#: KServe's constants.ServiceAnnotationDisallowedList: never copied onto the Knative Service.
DISALLOWED_ANNOTATIONS = frozenset(
    {
        "autoscaling.knative.dev/min-scale",
        "autoscaling.knative.dev/max-scale",
        "internal.serving.kserve.io/storage-initializer-sourceuri",
        "kubectl.kubernetes.io/last-applied-configuration",
    }
)
KPA = "kpa.autoscaling.knative.dev"


def knative_service(isvc: dict[str, Any]) -> dict[str, Any]:
    """The Knative Service KServe makes of a Serverless InferenceService's predictor."""
    meta, predictor = isvc["metadata"], isvc["spec"]["predictor"]
    name = f"{meta['name']}-predictor"
    annotations = {
        k: v
        for k, v in {**(meta.get("annotations") or {}), **(predictor.get("annotations") or {})}.items()
        if k not in DISALLOWED_ANNOTATIONS
    }
    annotations.setdefault("autoscaling.knative.dev/class", KPA)
    if "scaleTarget" in predictor:
        annotations["autoscaling.knative.dev/target"] = str(predictor["scaleTarget"])
    if "scaleMetric" in predictor:
        annotations["autoscaling.knative.dev/metric"] = str(predictor["scaleMetric"])
    annotations["autoscaling.knative.dev/min-scale"] = str(predictor.get("minReplicas", 1))
    if predictor.get("maxReplicas"):
        annotations["autoscaling.knative.dev/max-scale"] = str(predictor["maxReplicas"])
    labels = {
        **(meta.get("labels") or {}),
        **(predictor.get("labels") or {}),
        "serving.kserve.io/inferenceservice": meta["name"],
        "component": "predictor",
    }
    traffic: list[dict[str, Any]] = [{"latestRevision": True, "percent": 100}]
    percent = predictor.get("canaryTrafficPercent")
    if percent is not None:  # the last rolled-out revision keeps the rest (one exists once it rolled out)
        traffic = [{"latestRevision": True, "percent": percent}]
        if percent < 100:
            previous = {"revisionName": f"{name}-00001", "latestRevision": False, "percent": 100 - percent}
            traffic.append(previous | {"tag": "prev"})
    pod_spec = {k: v for k, v in predictor.items() if k not in EXTENSION_FIELDS}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels},
        "spec": {
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
            "traffic": traffic,
        },
    }


def validate(services: list[dict[str, Any]], features: dict[str, str]) -> dict[str, str]:
    """`namespace/name` -> "ok", or Knative's validation errors, for each Service."""
    if not VALIDATOR.is_file():
        raise ClusterTestError(
            f"{VALIDATOR} is missing; run tools/setup/knative-tool.sh (make test-setup does)"
        )
    with tempfile.TemporaryDirectory(prefix="knative-validate-") as tmp:
        features_file, services_file = Path(tmp) / "features.json", Path(tmp) / "services.json"
        features_file.write_text(json.dumps(features))
        services_file.write_text(json.dumps(services))
        run = subprocess.run(
            [str(VALIDATOR), str(features_file), str(services_file)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    if run.returncode not in (0, 1):
        raise ClusterTestError(f"knative-validate failed: {run.stderr.strip()}")
    verdicts: dict[str, str] = {}
    current = ""
    for line in run.stdout.splitlines():
        head, _, verdict = line.rpartition(": ")
        if verdict in ("ok", "invalid") and "/" in head and not line.startswith(" "):
            current = head
            verdicts[current] = "ok" if verdict == "ok" else ""
        elif current:
            verdicts[current] = (verdicts[current] + "\n" + line).strip()
    return verdicts
