package gcpcert

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/gcp"
)

// Options configure the in-process Certificate Manager emulator.
type Options struct {
	// Fault is the fault layer in front of the server (its interceptors run first and count every call,
	// as "certificatemanager:CreateCertificate", "longrunning:GetOperation", ...). Nil: a fresh layer with
	// no rules, so calls are still counted (see Server.Fault).
	Fault *fault.Layer
	// Interceptors run after the fault layer, outermost first, for the calls it lets through (for example
	// gcp.DenyToken).
	Interceptors []grpc.UnaryServerInterceptor
	// Now is the emulator's clock (create/update times, operation times). Nil: time.Now.
	Now func() time.Time
}

// Server is a running Certificate Manager emulator.
type Server struct {
	fault    *fault.Layer
	addr     string
	lis      net.Listener
	srv      *grpc.Server
	svc      *service
	stopOnce sync.Once
}

// Start starts the emulator on a free 127.0.0.1 port. Stop it with Stop.
func Start(opts Options) (s *Server, err error) {
	layer := opts.Fault
	if layer == nil {
		layer = fault.New(1, 1)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s = &Server{fault: layer, svc: newService(now)}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	serverOpts := layer.ServerOptions()
	if len(opts.Interceptors) > 0 {
		serverOpts = append(serverOpts, grpc.ChainUnaryInterceptor(opts.Interceptors...))
	}
	s.srv = grpc.NewServer(serverOpts...)
	certificatemanagerpb.RegisterCertificateManagerServer(s.srv, s.svc)
	longrunningpb.RegisterOperationsServer(s.srv, &operations{s: s.svc})

	s.lis, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("certificate manager emulator: listen: %w", err)
	}
	s.addr = s.lis.Addr().String()
	lis, srv := s.lis, s.srv
	go func() { _ = srv.Serve(lis) }() // returns when Stop closes the listener
	return s, nil
}

// Addr is the gRPC address, 127.0.0.1:PORT.
func (s *Server) Addr() string { return s.addr }

// Fault is the fault layer in front of the server.
func (s *Server) Fault() *fault.Layer { return s.fault }

// ClientOptions are the options for certificatemanager.NewClient to talk to the emulator: its endpoint,
// plaintext, no authentication.
func (s *Server) ClientOptions() []option.ClientOption { return gcp.EndpointOptions(s.addr) }

// TLSCertificate returns the stored chain and private key of the certificate name (projects/{p}/locations/
// {l}/certificates/{id}) as a tls.Certificate, as a load balancer using it would present it. It is for
// in-process tests only: the API never returns the private key.
func (s *Server) TLSCertificate(name string) (tls.Certificate, error) {
	return s.svc.tlsCertificate(name)
}

// Stop stops the server and frees the port. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.srv != nil {
			stopGRPC(s.srv)
		} else if s.lis != nil {
			_ = s.lis.Close()
		}
	})
}

// stopGRPC stops gracefully, then hard after a grace period (a stuck stream must not hang a test).
func stopGRPC(g *grpc.Server) {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		g.Stop()
		<-done
	}
}
