package environment

file_findings(files) := {f | some f in findings with input as [] with data.mlplatform.files as files; f.rule == "argocd-readable-files"}

test_manifests_and_markdown_pass if count(file_findings(["inference.yaml", "app.json", "a.yml", "architecture.md"])) == 0

test_kustomization_fails if count(file_findings(["inference.yaml", "kustomization.yaml"])) == 1

test_chart_fails if count(file_findings(["Chart.yaml"])) == 1

test_construct_metadata_fails if count(file_findings(["construct-metadata.json"])) == 1

test_other_extension_fails if count(file_findings(["notes.txt"])) == 1

test_subfolder_fails if count(file_findings(["sub/x.yaml"])) == 1
