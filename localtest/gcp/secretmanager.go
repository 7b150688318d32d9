package gcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	gcpemulator "github.com/blackwell-systems/gcp-secret-manager-emulator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/logbuf"
)

// SecretManagerOptions configure the in-process Secret Manager emulator.
type SecretManagerOptions struct {
	// Fault is the fault layer in front of the server (its interceptors run first and count every call).
	// Nil: a fresh layer with no rules, so calls are still counted (see SecretManager.Fault).
	Fault *fault.Layer
	// Interceptors run after the fault layer, outermost first, for the calls it lets through. After the
	// handler returns, ChangeFrom(ctx) tells what a successful mutating call changed (the secret with its
	// topics, the version), e.g. to publish Secret Manager notifications to Pub/Sub.
	Interceptors []grpc.UnaryServerInterceptor
	// Gateway also serves the REST API (grpc-gateway, /v1/...) on 127.0.0.1, in front of the gRPC server
	// (so the fault layer sees REST calls too). Not with TLS.
	Gateway bool

	// TLS, if set, makes the gRPC server speak TLS with this configuration (a certificate from a local
	// CA), so that clients send their per-RPC credentials as they do to the service.
	TLS *tls.Config
	// Authenticate, if set, checks the bearer token of every call (the "authorization" metadata) after
	// the fault layer and before the other interceptors, and returns the caller's principal (counted by
	// Callers). A call without a token, or whose token it refuses, fails with UNAUTHENTICATED as at the
	// service; the token never appears in the answer or the log.
	Authenticate func(ctx context.Context, token string) (principal string, err error)
}

// SecretManager is a running Secret Manager emulator.
type SecretManager struct {
	fault *fault.Layer
	addr  string
	lis   net.Listener
	srv   *grpc.Server

	inner     *grpc.Server
	innerLis  *bufconn.Listener
	innerConn *grpc.ClientConn

	gwURL string
	gw    *http.Server

	logs     logbuf.Buffer
	stopOnce sync.Once

	mu      sync.Mutex
	callers map[string]int64 // authenticated calls per principal
	refused int64            // calls refused for their credentials
}

// StartSecretManager starts the emulator on a free 127.0.0.1 port. Stop it with Stop.
func StartSecretManager(opts SecretManagerOptions) (sm *SecretManager, err error) {
	layer := opts.Fault
	if layer == nil {
		layer = fault.New(1, 1)
	}
	if opts.Gateway && opts.TLS != nil {
		return nil, errors.New("secret manager emulator: the REST gateway cannot front a TLS server")
	}
	sm = &SecretManager{fault: layer, callers: map[string]int64{}}
	defer func() {
		if err != nil {
			sm.Stop()
		}
	}()

	// The emulator itself, reachable only in-process.
	sm.innerLis = bufconn.Listen(4 << 20)
	sm.inner = grpc.NewServer()
	if err := gcpemulator.Register(sm.inner); err != nil {
		return nil, fmt.Errorf("secret manager emulator: %w", err)
	}
	go func() { _ = sm.inner.Serve(sm.innerLis) }()
	sm.innerConn, err = grpc.NewClient("passthrough:///secretmanager-emulator",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return sm.innerLis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("secret manager emulator: in-process client: %w", err)
	}

	// The front server: fault layer, caller's interceptors, then the extending forwarder.
	serverOpts := layer.ServerOptions()
	var chain []grpc.UnaryServerInterceptor
	if opts.Authenticate != nil {
		chain = append(chain, sm.authenticate(opts.Authenticate))
	}
	if len(opts.Interceptors) > 0 {
		chain = append(chain, changeSlotInterceptor)
		chain = append(chain, opts.Interceptors...)
	}
	if len(chain) > 0 {
		serverOpts = append(serverOpts, grpc.ChainUnaryInterceptor(chain...))
	}
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	sm.srv = grpc.NewServer(serverOpts...)
	secretmanagerpb.RegisterSecretManagerServiceServer(sm.srv, newFrontServer(secretmanagerpb.NewSecretManagerServiceClient(sm.innerConn)))

	sm.lis, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("secret manager emulator: listen: %w", err)
	}
	sm.addr = sm.lis.Addr().String()
	go func() {
		if err := sm.srv.Serve(sm.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			sm.logf("grpc server stopped: %v", err)
		}
	}()
	sm.logf("secret manager emulator serving gRPC on %s (TLS %v, authenticated %v)", sm.addr, opts.TLS != nil, opts.Authenticate != nil)

	if opts.Gateway {
		h, err := gcpemulator.NewGatewayHandler(sm.addr)
		if err != nil {
			return nil, fmt.Errorf("secret manager emulator: REST gateway: %w", err)
		}
		gl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("secret manager emulator: REST gateway listen: %w", err)
		}
		sm.gw = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		sm.gwURL = "http://" + gl.Addr().String()
		go func() {
			if err := sm.gw.Serve(gl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				sm.logf("REST gateway stopped: %v", err)
			}
		}()
		sm.logf("secret manager emulator serving REST on %s", sm.gwURL)
	}
	return sm, nil
}

// Addr is the gRPC address, 127.0.0.1:PORT.
func (sm *SecretManager) Addr() string { return sm.addr }

// Fault is the fault layer in front of the server.
func (sm *SecretManager) Fault() *fault.Layer { return sm.fault }

// GatewayURL is the REST gateway's base URL (http://127.0.0.1:PORT; the API is under /v1/), or "" when
// it was not asked for.
func (sm *SecretManager) GatewayURL() string { return sm.gwURL }

// ClientOptions are the options for secretmanager.NewClient to talk to the emulator: its endpoint,
// plaintext, no authentication.
func (sm *SecretManager) ClientOptions() []option.ClientOption {
	return EndpointOptions(sm.addr)
}

// ClientOptionsWithToken are ClientOptions plus a bearer token sent with every call (see DenyToken).
func (sm *SecretManager) ClientOptionsWithToken(token string) []option.ClientOption {
	return append(sm.ClientOptions(), option.WithGRPCDialOption(grpc.WithPerRPCCredentials(bearer(token))))
}

// EndpointOptions are client options for a plaintext, unauthenticated gRPC endpoint on addr.
func EndpointOptions(addr string) []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// Logs returns what the emulator logged (its own lifecycle lines; the emulator itself logs nothing).
func (sm *SecretManager) Logs() string { return sm.logs.String() }

// Stop stops the servers and frees the port. It is safe to call more than once.
func (sm *SecretManager) Stop() {
	sm.stopOnce.Do(func() {
		if sm.gw != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = sm.gw.Shutdown(ctx)
			cancel()
		}
		if sm.srv != nil {
			stopGRPC(sm.srv)
		}
		if sm.innerConn != nil {
			_ = sm.innerConn.Close()
		}
		if sm.inner != nil {
			stopGRPC(sm.inner)
		}
		sm.logf("secret manager emulator stopped")
	})
}

// stopGRPC stops gracefully, then hard after a grace period (a stuck stream must not hang a test).
func stopGRPC(s *grpc.Server) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.Stop()
		<-done
	}
}

func (sm *SecretManager) logf(format string, args ...any) {
	sm.logs.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + " " + fmt.Sprintf(format, args...) + "\n")
}

// The service's answers to calls without valid credentials.
const (
	msgMissingCredentials = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
	msgInvalidCredentials = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)

// authenticate is the interceptor of SecretManagerOptions.Authenticate.
func (sm *SecretManager) authenticate(check func(context.Context, string) (string, error)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		var token string
		for _, v := range md.Get("authorization") {
			if len(v) > 7 && strings.EqualFold(v[:7], "Bearer ") {
				token = strings.TrimSpace(v[7:])
			}
		}
		method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
		if token == "" {
			sm.refuse(method, "no bearer token")
			return nil, status.Error(codes.Unauthenticated, msgMissingCredentials)
		}
		principal, err := check(ctx, token)
		if err != nil {
			sm.refuse(method, err.Error())
			return nil, status.Error(codes.Unauthenticated, msgInvalidCredentials)
		}
		sm.mu.Lock()
		sm.callers[principal]++
		sm.mu.Unlock()
		return h(ctx, req)
	}
}

func (sm *SecretManager) refuse(method, why string) {
	sm.mu.Lock()
	sm.refused++
	sm.mu.Unlock()
	sm.logf("%s refused: UNAUTHENTICATED (%s)", method, why)
}

// Callers returns how many calls each principal made (with SecretManagerOptions.Authenticate), and how
// many calls were refused for their credentials.
func (sm *SecretManager) Callers() (byPrincipal map[string]int64, refused int64) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	out := make(map[string]int64, len(sm.callers))
	for k, v := range sm.callers {
		out[k] = v
	}
	return out, sm.refused
}

// DenyToken refuses, with PERMISSION_DENIED as the service does for a caller lacking a permission, every
// call whose bearer token is token (see ClientOptionsWithToken). Pass it in SecretManagerOptions.Interceptors.
func DenyToken(token string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, v := range md.Get("authorization") {
			if v == "Bearer "+token {
				method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
				return nil, status.Errorf(codes.PermissionDenied,
					"Permission denied on %s for the caller (or the resource may not exist).", method)
			}
		}
		return h(ctx, req)
	}
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }
