package main

import (
	"context"
	"flag"
	"fmt"
)

func init() {
	register(&command{
		name:    "manifest-name",
		usage:   "DB [--hostname H]",
		summary: "print the replica key of a database (its name in targets)",
		run:     runManifestName,
	})
}

func runManifestName(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("manifest-name", flag.ContinueOnError)
	hostname := fs.String("hostname", "", "host the database lives on (default: this host)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("name one database")
	}
	name, key, err := a.dbKey(pos[0], *hostname)
	if err != nil {
		return err
	}
	if a.jsonOut {
		return a.printJSON(map[string]string{"name": name, "key": key})
	}
	fmt.Fprintln(a.stdout, key)
	return nil
}
