package object

secret(fields) := object.union({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis", "namespace": "ml-test"}}, fields)

test_empty_secret_passes if count(findings) == 0 with input as secret({})

test_secret_with_data_fails if {
	some f in findings with input as secret({"data": {"password": "aHVudGVyMg=="}})
	f.rule == "no-secret-data"
}

test_secret_with_string_data_fails if {
	some f in findings with input as secret({"stringData": {"password": "hunter2"}})
	f.rule == "no-secret-data"
}
