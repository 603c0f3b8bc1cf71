"""A small REST client for the test apiserver: discovery, server-side apply, reads and patches.

Talking to the API directly (instead of shelling out to kubectl) gives each response's own status message and
its `Warning` headers (PodSecurity "would violate", deprecations) exactly as the apiserver sends them.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

FIELD_MANAGER = "mlplatform-cluster-test"
_WARNING = re.compile(r'^\s*299\s+\S+\s+"(?P<text>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Resource:
    group_version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced:
            base += f"/namespaces/{namespace or 'default'}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


@dataclass(frozen=True)
class Applied:
    ok: bool
    message: str  # the apiserver's own message when rejected
    warnings: list[str]


class ApiError(Exception):
    pass


def warnings_of(response: httpx.Response) -> list[str]:
    found = []
    for value in response.headers.get_list("warning"):
        match = _WARNING.match(value)
        found.append(match.group("text").replace('\\"', '"') if match else value)
    return found


def status_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    return str(body.get("message") or body)


class Kube:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self._resources: dict[tuple[str, str], Resource] = {}

    def discover(self) -> None:
        """(apiVersion, kind) -> resource, for every served group version."""
        found: dict[tuple[str, str], Resource] = {}
        versions = ["v1"]
        groups = self._json("/apis")
        for group in groups.get("groups", []):
            versions += [v["groupVersion"] for v in group.get("versions", [])]
        for gv in versions:
            try:
                doc = self._json("/api/v1" if gv == "v1" else f"/apis/{gv}")
            except ApiError:
                # An aggregated API whose server is not running (KEDA's external metrics, where no operator
                # process runs) answers 503: skip it, as kubectl's discovery does.
                continue
            for res in doc.get("resources", []):
                if "/" in res["name"]:
                    continue  # subresources
                found[(gv, res["kind"])] = Resource(gv, res["name"], bool(res["namespaced"]))
        self._resources = found

    def resource(self, api_version: str, kind: str) -> Resource:
        if (api_version, kind) not in self._resources:
            self.discover()
        try:
            return self._resources[(api_version, kind)]
        except KeyError:
            raise ApiError(
                f"the apiserver serves no {kind} in {api_version} (is its CRD installed?)"
            ) from None

    def _json(self, path: str, **params: str) -> dict[str, Any]:
        response = self.client.get(path, params=params)
        if response.status_code != 200:
            raise ApiError(f"GET {path}: {status_message(response)}")
        result: dict[str, Any] = response.json()
        return result

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> Applied:
        """Server-side apply, as Argo CD's ServerSideApply or `kubectl apply --server-side` does."""
        meta = obj["metadata"]
        try:
            res = self.resource(obj["apiVersion"], obj["kind"])
        except ApiError as exc:
            return Applied(ok=False, message=str(exc), warnings=[])
        params = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        response = self.client.patch(
            res.path(meta.get("namespace"), meta["name"]),
            params=params,
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        ok = response.status_code in (200, 201)
        return Applied(ok=ok, message="" if ok else status_message(response), warnings=warnings_of(response))

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        res = self.resource(api_version, kind)
        response = self.client.get(res.path(namespace, name))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ApiError(f"GET {kind} {namespace}/{name}: {status_message(response)}")
        result: dict[str, Any] = response.json()
        return result

    def list(self, api_version: str, kind: str, namespace: str | None, **params: str) -> list[dict[str, Any]]:
        res = self.resource(api_version, kind)
        items: list[dict[str, Any]] = self._json(res.path(namespace), **params).get("items", [])
        return items

    def list_at(
        self, api_version: str, kind: str, namespace: str | None
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """The items and the list's resourceVersion, where a watch that misses nothing starts."""
        doc = self._json(self.resource(api_version, kind).path(namespace))
        return doc.get("items", []), str(doc["metadata"]["resourceVersion"])

    def watch(
        self, api_version: str, kind: str, namespace: str | None, *, since: str, timeout_s: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) for every change after resourceVersion `since`, as `kubectl get -w` streams them,
        until the apiserver ends the watch after `timeout_s`. An expired `since` arrives as an ERROR event."""
        params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": str(timeout_s)}
        path = self.resource(api_version, kind).path(namespace)
        with self.client.stream("GET", path, params=params, timeout=timeout_s + 15.0) as response:
            if response.status_code != 200:
                raise ApiError(f"WATCH {kind} {namespace}: HTTP {response.status_code}")
            for line in response.iter_lines():
                if line.strip():
                    event = json.loads(line)
                    yield str(event["type"]), event["object"]

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """DELETE, as `kubectl delete` does (finalizers then run; a missing object is not an error)."""
        res = self.resource(api_version, kind)
        response = self.client.delete(res.path(namespace, name))
        if response.status_code not in (200, 202, 404):
            raise ApiError(f"DELETE {kind} {namespace}/{name}: {status_message(response)}")

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        res = self.resource(api_version, kind)
        path = res.path(namespace, name) + (f"/{subresource}" if subresource else "")
        response = self.client.patch(
            path, content=json.dumps(body), headers={"Content-Type": "application/merge-patch+json"}
        )
        if response.status_code != 200:
            raise ApiError(f"PATCH {kind} {namespace}/{name}: {status_message(response)}")
        result: dict[str, Any] = response.json()
        return result
