package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/restore"
)

func init() {
	register(&command{
		name:    "list",
		usage:   "[--versions DB|KEY]",
		summary: "list replicated databases in the target, or the versions of one",
		run:     runList,
	})
}

func runList(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	versionsOf := fs.String("versions", "", "list the versions of this database (path or replica key)")
	hostname := fs.String("hostname", "", "with --versions DB: host the database was replicated from")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	s, err := a.store(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if *versionsOf != "" {
		key := *versionsOf
		if _, err := names.NameFromKey(key); err != nil {
			if _, key, err = a.dbKey(key, *hostname); err != nil {
				return err
			}
		}
		seqs, err := restore.Versions(ctx, s, key)
		if err != nil {
			return err
		}
		kept, err := a.retained(ctx, s, key)
		if err != nil {
			return err
		}
		type versionInfo struct {
			manifestInfo
			Retained string `json:"retained"` // why gc keeps it; "" when the next gc deletes it
		}
		var infos []versionInfo
		for _, seq := range seqs {
			m, err := restore.Version(ctx, s, key, seq)
			if err != nil {
				return err
			}
			infos = append(infos, versionInfo{infoOf(m), kept[seq]})
		}
		if a.jsonOut {
			return a.printJSON(infos)
		}
		for _, i := range infos {
			why := i.Retained
			if why == "" {
				why = "expired"
			}
			fmt.Fprintf(a.stdout, "%d\t%s\t%d bytes\t%s\n", i.Version, i.CommitTime.Format("2006-01-02T15:04:05.000Z07:00"), i.Length, why)
		}
		return nil
	}
	keys, err := s.List(ctx, "dbs/")
	if err != nil {
		return err
	}
	type entry struct {
		Key string `json:"key"`
		manifestInfo
	}
	var out []entry
	for _, k := range keys {
		if !strings.HasSuffix(k, "/latest") {
			continue
		}
		key := strings.TrimSuffix(strings.TrimPrefix(k, "dbs/"), "/latest")
		m, err := restore.Latest(ctx, s, key)
		if err != nil {
			a.log.Warn("unreadable replica", "key", key, "err", err)
			continue
		}
		out = append(out, entry{key, infoOf(m)})
	}
	if a.jsonOut {
		if out == nil {
			out = []entry{}
		}
		return a.printJSON(out)
	}
	for _, e := range out {
		fmt.Fprintf(a.stdout, "%s\tversion %d\t%s\t%d bytes\n", e.Name, e.Version, e.CommitTime.Format("2006-01-02T15:04:05.000Z07:00"), e.Length)
	}
	return nil
}
