package main

import (
	"context"
	"flag"

	"github.com/verneuil-go/verneuil/internal/copier"
)

func init() {
	register(&command{
		name:    "flush",
		usage:   "",
		summary: "upload everything waiting in the spool directory, then exit",
		run:     runFlush,
	})
}

func runFlush(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("flush", flag.ContinueOnError)
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("flush takes no arguments")
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	stores, closeAll, err := openTargets(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	c := copier.New(copier.Options{SpoolDir: cfg.SpoolDir, Targets: stores, RateLimit: 1000, RateBurst: 1000,
		Logger: a.log.With("component", "copier")})
	return c.UploadAll(ctx)
}
