// dashcheck reads Grafana dashboard JSON files the way the Grafana Foundation
// SDK's generated Go types do, strictly: every field must be one the dashboard
// schema knows, with its type (UnmarshalJSONStrict, with the panel plugins'
// option types registered), and the result must pass the schema's constraints
// (Validate). It prints one line per file and exits 1 if any is refused.
// Used by tests/unit/test_dashboards.py.
//
//	go run . dashboards/json/*/*.json
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// real: the generated methods return their error list typed, so an empty list is
// a non-nil error value; no entries means no error.
func real(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var d dashboard.Dashboard
	if err := real(d.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("not a dashboard of the schema: %w", err)
	}
	if err := real(d.Validate()); err != nil {
		return fmt.Errorf("fails the schema's constraints: %w", err)
	}
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck DASHBOARD.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Printf("error %s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("ok %s\n", path)
	}
	if failed {
		os.Exit(1)
	}
}
