// knative-validate: Knative Serving's own defaulting and validation (knative.dev/serving at the version go.mod
// requires, the code its admission webhook runs) of Knative Services, with the config-features flags given.
//
// Usage: knative-validate FEATURES.json SERVICES.json
//
//	FEATURES.json: {"kubernetes.podspec-securitycontext": "enabled", ...} (config-features' data)
//	SERVICES.json: [<serving.knative.dev/v1 Service>, ...]
//
// For each Service it prints one line: "<namespace>/<name>: ok", or its validation errors on the lines after
// "<namespace>/<name>: invalid"; it exits 1 when any Service is invalid, 2 on bad input.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"knative.dev/pkg/apis"
	"knative.dev/serving/pkg/apis/config"
	v1 "knative.dev/serving/pkg/apis/serving/v1"
	autoscalerconfig "knative.dev/serving/pkg/autoscaler/config"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: knative-validate FEATURES.json SERVICES.json")
		os.Exit(2)
	}
	var features map[string]string
	var services []v1.Service
	if err := read(os.Args[1], &features); err != nil {
		fail(err)
	}
	if err := read(os.Args[2], &services); err != nil {
		fail(err)
	}
	ctx, err := withConfig(context.Background(), features)
	if err != nil {
		fail(err)
	}
	invalid := false
	for i := range services {
		svc := &services[i]
		svc.SetDefaults(ctx)
		if errs := svc.Validate(apis.WithinCreate(ctx)); errs != nil {
			invalid = true
			fmt.Printf("%s/%s: invalid\n%s\n", svc.Namespace, svc.Name, errs.Error())
			continue
		}
		fmt.Printf("%s/%s: ok\n", svc.Namespace, svc.Name)
	}
	if invalid {
		os.Exit(1)
	}
}

// withConfig attaches the features given and Knative's defaults for everything else, as the webhook does
// from its ConfigMaps.
func withConfig(ctx context.Context, features map[string]string) (context.Context, error) {
	f, err := config.NewFeaturesConfigFromMap(features)
	if err != nil {
		return nil, fmt.Errorf("config-features: %w", err)
	}
	d, err := config.NewDefaultsConfigFromMap(map[string]string{})
	if err != nil {
		return nil, err
	}
	a, err := autoscalerconfig.NewConfigFromMap(map[string]string{})
	if err != nil {
		return nil, err
	}
	return config.ToContext(ctx, &config.Config{Features: f, Defaults: d, Autoscaler: a}), nil
}

func read(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "knative-validate:", err)
	os.Exit(2)
}
