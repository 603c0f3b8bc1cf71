package environment

import data.lib

tool_files := {"kustomization.yaml", "kustomization.yml", "Kustomization", "construct-metadata.json"}

# METADATA
# title: dist/<env>/ stays a plain directory source for Argo CD
# description: >-
#   Argo CD reads dist/<env>/ as a plain directory source: only .yaml, .yml and .json manifests, and nothing that
#   turns it into a Kustomize or Helm app or that Argo CD would choke on. data.mlplatform.files lists every file
#   of the folder (the check collects it).
# custom:
#   id: argocd-readable-files
#   severity: medium
#   category: Reliability
findings contains lib.env_finding(
	"argocd-readable-files",
	sprintf("%s would make Argo CD misread the folder", [f]),
	"remove the file from dist/ (the generator must not write it)",
) if {
	some f in object.get(lib.settings, "files", [])
	misread(f)
}

base(f) := parts[count(parts) - 1] if parts := split(f, "/")

misread(f) if base(f) in tool_files

misread(f) if endswith(base(f), "Chart.yaml")

misread(f) if startswith(base(f), ".argocd-source")

misread(f) if contains(f, "/")

misread(f) if {
	not endswith(f, ".md")
	not regex.match(`\.(ya?ml|json)$`, f)
}
