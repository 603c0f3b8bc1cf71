"""The platform's add-ons, rendered from their pinned upstream sources (issue 28 point 2).

dist/infrastructure/<cluster>/ holds one Argo CD Application per operator (the generator's
mlplatform.infrastructure). Argo CD renders those from the projects' chart repositories and git tags, which
this machine cannot reach; this package renders the same sources from the projects' Go modules at the
versions tools/versions.env pins, with a helm and a kustomize built from theirs (tools/setup/renderers.sh),
the way Argo CD's repo server does (helm template with the Application's release name, namespace and values;
kustomize build after the Application's image and namespace edits). What comes out is what Argo CD would
apply, so the tests can check it against the cluster: every CRD the environments use is served, the cluster
policies deny none of it, the apiserver admits it, and Argo CD syncs it before the environments.

- upstream.py: which module and folder each Application's source is, and the release's packaging steps;
- render.py: one Application -> its objects (hooks apart);
- collect.py: every Application of dist/infrastructure/, rendered;
- __main__.py: `python -m addons --dist dist --out build/addons`: one file per add-on of each cluster.
"""
