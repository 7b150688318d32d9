package gcp

import (
	"fmt"
	"net"
	"sync"

	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/keyferry/keyferry/localtest/fault"
)

// GRPCServer is an in-process gRPC emulator on a free 127.0.0.1 port behind the fault layer (the emulators
// of Cloud KMS and Certificate Manager use it).
type GRPCServer struct {
	fault    *fault.Layer
	addr     string
	srv      *grpc.Server
	stopOnce sync.Once
}

// ServeGRPC starts a server: the fault layer's interceptors first (nil: a layer with no rules, still
// counting), then interceptors, then the services register adds. what names it in errors.
func ServeGRPC(what string, layer *fault.Layer, interceptors []grpc.UnaryServerInterceptor, register func(*grpc.Server)) (*GRPCServer, error) {
	if layer == nil {
		layer = fault.New(1, 1)
	}
	opts := layer.ServerOptions()
	if len(interceptors) > 0 {
		opts = append(opts, grpc.ChainUnaryInterceptor(interceptors...))
	}
	g := &GRPCServer{fault: layer, srv: grpc.NewServer(opts...)}
	register(g.srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.srv.Stop()
		return nil, fmt.Errorf("%s: listen: %w", what, err)
	}
	g.addr = lis.Addr().String()
	go func() { _ = g.srv.Serve(lis) }() // returns when Stop closes the listener
	return g, nil
}

// Addr is the gRPC address, 127.0.0.1:PORT.
func (g *GRPCServer) Addr() string { return g.addr }

// Fault is the fault layer in front of the server.
func (g *GRPCServer) Fault() *fault.Layer { return g.fault }

// ClientOptions are the client options to talk to the emulator: its endpoint, plaintext, no authentication.
func (g *GRPCServer) ClientOptions() []option.ClientOption { return EndpointOptions(g.addr) }

// Stop stops the server and frees the port. It is safe to call more than once.
func (g *GRPCServer) Stop() { g.stopOnce.Do(func() { stopGRPC(g.srv) }) }
