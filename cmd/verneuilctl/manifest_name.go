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
		examples: []string{
			"verneuilctl manifest-name /srv/app.db",
			"verneuilctl manifest-name /srv/app.db --hostname web-3",
		},
		json: `{"name": "web-1:/srv/app.db", "key": "1a2b-web-1%3A%2Fsrv%2Fapp.db"}`,
		run:  runManifestName,
	})
}

func runManifestName(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("manifest-name", flag.ContinueOnError)
	hostname := fs.String("hostname", "", "the `HOST` the database lives on (default: this host)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("name one database")
	}
	ref, _, err := a.parseDB(pos[0], *hostname)
	if err != nil {
		return err
	}
	if a.jsonOut {
		return a.printJSON(ref)
	}
	fmt.Fprintln(a.stdout, ref.Key)
	return nil
}
