// Command ferry-agent runs a Ferry agent beside an APIM installation: it links
// to the hub, exports APIs for promotion, raises tasks for promotions that
// target its environment and imports what the environment's admin accepts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"ferry.dev/agent/internal/config"
	"ferry.dev/agent/internal/daemon"
)

func main() {
	cfg, err := config.Load(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry-agent:", err)
		os.Exit(2)
	}
	if cfg.CheckConfig {
		fmt.Println("ferry-agent: configuration OK")
		return
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)
	d, err := daemon.New(cfg, log)
	if err != nil {
		log.Error("invalid configuration", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := d.Run(ctx); err != nil {
		log.Error("agent stopped with an error", "err", err)
		os.Exit(1)
	}
}
