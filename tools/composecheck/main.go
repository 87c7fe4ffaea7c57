// composecheck loads a compose file the way Docker Compose v2 does (compose-go:
// the compose specification's schema, interpolation from the environment and
// .env, merging, normalisation) and prints each service with its image, or
// the first error. Used by tests/unit/test_compose.py.
//
//	go run . path/to/docker-compose.yml
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck docker-compose.yml")
		os.Exit(2)
	}
	dir, err := filepath.Abs(filepath.Dir(os.Args[1]))
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	// as `docker compose -f FILE config` in FILE's directory: the environment, then .env there
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithWorkingDirectory(dir), cli.WithOsEnv,
		cli.WithEnvFiles(), cli.WithDotEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	names := project.ServiceNames()
	sort.Strings(names)
	fmt.Printf("project %s\n", project.Name)
	for _, name := range names {
		s := project.Services[name]
		image := s.Image
		if s.Build != nil {
			image = "build:" + s.Build.Dockerfile
		}
		fmt.Printf("service %s %s\n", name, image)
	}
}
