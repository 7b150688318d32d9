package notify

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keyferry/keyferry/core/config"
)

type pubsubPublisher struct {
	c *pubsub.Client
	p *pubsub.Publisher
}

func newPubSub(ctx context.Context, rc config.NotifyRoute) (publisher, error) {
	project := strings.Split(rc.Topic, "/")[1] // the loader checked projects/P/topics/T
	var opts []option.ClientOption
	if rc.Endpoint != "" {
		// Local cloud only: the Pub/Sub emulator speaks plain gRPC without credentials.
		target := rc.Endpoint
		if u, err := url.Parse(rc.Endpoint); err == nil && u.Host != "" {
			target = u.Host
		}
		opts = []option.ClientOption{option.WithEndpoint(target), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}
	}
	c, err := pubsub.NewClient(ctx, project, opts...)
	if err != nil {
		return nil, fmt.Errorf("Pub/Sub client: %w", err)
	}
	return &pubsubPublisher{c: c, p: c.Publisher(rc.Topic)}, nil
}

func (p *pubsubPublisher) publish(ctx context.Context, kind string, body []byte) error {
	_, err := p.p.Publish(ctx, &pubsub.Message{Data: body, Attributes: map[string]string{"source": Source, "kind": kind}}).Get(ctx)
	return err
}

func (p *pubsubPublisher) close() error {
	p.p.Stop()
	return p.c.Close()
}
