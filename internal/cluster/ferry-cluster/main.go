// Command ferry-cluster brings a cluster of package cluster up on this machine
// and keeps it until interrupted, for benchmarks and manual tries:
//
//	go run ./internal/cluster/ferry-cluster -nodes node1=server,node2=api,worker1=worker
//
// It prints each node's API URL and the admin key, then waits for SIGINT or
// SIGTERM and removes everything it created.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-faas/ferry/internal/cluster"
)

func main() {
	nodes := flag.String("nodes", "node1=server,node2=server,node3=server,worker1=worker", "NAME=ROLE,... (role: server, api, worker)")
	flag.Parse()
	var opts cluster.Options
	for _, spec := range strings.Split(*nodes, ",") {
		name, role, ok := strings.Cut(spec, "=")
		if !ok {
			log.Fatalf("-nodes: %q is not NAME=ROLE", spec)
		}
		opts.Nodes = append(opts.Nodes, cluster.Node{Name: name, Role: cluster.Role(role)})
	}
	root, err := os.MkdirTemp("", "fc")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	opts.DataRoot = root
	opts.Logf = log.Printf
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		log.Print(err)
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Close(cctx); err != nil {
			log.Print(err)
		}
	}()
	fmt.Printf("FERRY_API_KEY=%s\n", c.AdminKey)
	for _, n := range c.NodeNames() {
		if url := c.URL(n); url != "http://" {
			fmt.Printf("%s %s\n", n, url)
		}
	}
	<-ctx.Done()
}
