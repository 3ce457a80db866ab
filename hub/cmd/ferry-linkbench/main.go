// Command ferry-linkbench measures the hub's agent link: how many handshakes
// per second it takes and how much memory each connected agent costs, beside
// a bare gorilla/websocket server for comparison.
//
//	ferry-linkbench echo -listen ADDR
//	    a bare WebSocket server (small pooled buffers, one reader and one
//	    writer goroutine per connection) that echoes every frame
//	ferry-linkbench enroll -hub URL -n N -creds FILE [-org NAME -env NAME]
//	    creates an organization, an environment and N installations through
//	    the hub's REST API (admin token in FERRY_ADMIN_TOKEN) and writes their
//	    credentials to FILE, one a line
//	ferry-linkbench clients -hub URL -n N [-creds FILE] [-rate R]
//	    opens N links, each saying hello first and waiting for the answer,
//	    prints a JSON summary line once all handshakes are done, then stays
//	    connected (answering pings) for -hold or until SIGINT/SIGTERM
//
// Every mode talks to loopback addresses only and stops by itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "echo":
		err = echoMain(ctx, os.Args[2:])
	case "enroll":
		err = enrollMain(ctx, os.Args[2:])
	case "clients":
		err = clientsMain(ctx, os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry-linkbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  ferry-linkbench echo    -listen 127.0.0.1:0 [-max-conns N] [-max-time D]
  ferry-linkbench enroll  -hub http://127.0.0.1:PORT -n N -creds FILE [-org NAME] [-env NAME] [-concurrency C]
  ferry-linkbench clients -hub http://127.0.0.1:PORT -n N [-creds FILE] [-rate R] [-concurrency C] [-hold D]

The enroll mode reads the platform admin token from FERRY_ADMIN_TOKEN.
Run 'ferry-linkbench MODE -h' for a mode's flags.
`)
}
