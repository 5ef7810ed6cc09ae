package runtimes

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"

	"github.com/ferry-faas/ferry"
)

// TestNetworkFunctionsIsolated: two functions with network: true cannot
// reach each other's containers, while each still reaches the host (and so
// outside, where the host allows it). What it checks: function A listens on
// TCP port 8080 of its container; A itself connects to its own address
// (the listener works); function B connects to A's address and port and
// must fail; B connects to a port this test listens on at the network's
// gateway (the host) and must succeed. Before, both ran on Docker's default
// bridge, and B reached A.
func TestNetworkFunctionsIsolated(t *testing.T) {
	e := newTestExecutor(t, Config{})
	c := pythonCase(t, e)
	ctx := context.Background()
	n, err := e.docker.NetworkInspect(ctx, functionNetwork, network.InspectOptions{})
	if err != nil {
		t.Fatalf("network %s: %v", functionNetwork, err)
	}
	eq(t, "driver", n.Driver, "bridge")
	eq(t, "inter-container communication", n.Options[iccOption], "false")

	lim := ferry.Limits{Network: true}
	a := c.spec("net-a", map[string]any{"op": "listen", "port": 8080}, lim)
	wantStatus(t, execute(t, e, a), StatusCompleted)
	info, err := e.docker.ContainerInspect(ctx, containerOfKey(t, e, a))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "A's network mode", string(info.HostConfig.NetworkMode), functionNetwork)
	eq(t, "A's networks", len(info.NetworkSettings.Networks), 1)
	var ep *network.EndpointSettings
	for _, x := range info.NetworkSettings.Networks {
		ep = x
	}
	if ep == nil || ep.IPAddress == "" || ep.Gateway == "" {
		t.Fatalf("A has no address: %+v", info.NetworkSettings.Networks)
	}
	type conn struct {
		OK    bool
		Got   string
		Error string
	}
	connect := func(fn, host string, port int) conn {
		res := execute(t, e, c.spec(fn, map[string]any{"op": "connect", "host": host, "port": port, "timeout": 2}, lim))
		wantStatus(t, res, StatusCompleted)
		return decode[conn](t, res.Result)
	}

	self := connect("net-a", ep.IPAddress, 8080)
	if !self.OK || !strings.HasPrefix(self.Got, "hello from") {
		t.Fatalf("A cannot reach its own listener at %s:8080: %+v", ep.IPAddress, self)
	}
	other := connect("net-b", ep.IPAddress, 8080)
	t.Logf("B to A (%s:8080): %+v", ep.IPAddress, other)
	if other.OK {
		t.Errorf("function B reached function A's port 8080 at %s: %+v", ep.IPAddress, other)
	}

	// The host, through the gateway, is still reachable.
	ln, err := net.Listen("tcp", net.JoinHostPort(ep.Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = cn.Write([]byte("hello from the host"))
			_ = cn.Close()
		}
	}()
	host := connect("net-b", ep.Gateway, ln.Addr().(*net.TCPAddr).Port)
	if !host.OK || host.Got != "hello from the host" {
		t.Errorf("function B cannot reach the host at %s: %+v", ln.Addr(), host)
	}
}
