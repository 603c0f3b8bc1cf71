"""A real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager on loopback.

`python -m testcluster` (make cluster-test) starts one, installs the CRDs from their projects' pinned Go
modules, applies every folder of dist/ the way Argo CD orders a sync, scales every workload to its maximum
and checks that admission lets every pod in, then boots each inference Deployment as a local process with
exactly its manifest's environment and files. See README.md ("What the cluster needs") and tools/versions.env.
"""
