package notify

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/keyferry/keyferry/core/config"
)

func awsConfig(ctx context.Context, region string) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	return cfg, nil
}

// snsRegion is the route's region, else the topic ARN's.
func snsRegion(rc config.NotifyRoute) string {
	if rc.Region != "" {
		return rc.Region
	}
	if p := strings.Split(rc.Topic, ":"); len(p) > 3 {
		return p[3]
	}
	return ""
}

type snsPublisher struct {
	c     *sns.Client
	topic string
}

func newSNS(ctx context.Context, rc config.NotifyRoute) (publisher, error) {
	cfg, err := awsConfig(ctx, snsRegion(rc))
	if err != nil {
		return nil, err
	}
	return &snsPublisher{c: sns.NewFromConfig(cfg, func(o *sns.Options) {
		if rc.Endpoint != "" {
			o.BaseEndpoint = aws.String(rc.Endpoint)
		}
	}), topic: rc.Topic}, nil
}

func (p *snsPublisher) publish(ctx context.Context, kind string, body []byte) error {
	in := &sns.PublishInput{TopicArn: aws.String(p.topic), Message: aws.String(string(body)),
		Subject: aws.String(Source + " " + kind),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"kind":   {DataType: aws.String("String"), StringValue: aws.String(kind)},
			"source": {DataType: aws.String("String"), StringValue: aws.String(Source)},
		}}
	if strings.HasSuffix(p.topic, ".fifo") {
		in.MessageGroupId, in.MessageDeduplicationId = aws.String(Source), aws.String(dedupID(body))
	}
	_, err := p.c.Publish(ctx, in)
	return err
}

func (p *snsPublisher) close() error { return nil }

type eventBridgePublisher struct {
	c   *eventbridge.Client
	bus string
}

func newEventBridge(ctx context.Context, rc config.NotifyRoute) (publisher, error) {
	cfg, err := awsConfig(ctx, rc.Region)
	if err != nil {
		return nil, err
	}
	bus := rc.Bus
	if bus == "" {
		bus = "default"
	}
	return &eventBridgePublisher{c: eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) {
		if rc.Endpoint != "" {
			o.BaseEndpoint = aws.String(rc.Endpoint)
		}
	}), bus: bus}, nil
}

func (p *eventBridgePublisher) publish(ctx context.Context, kind string, body []byte) error {
	out, err := p.c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		Source: aws.String(Source), DetailType: aws.String(kind), Detail: aws.String(string(body)),
		EventBusName: aws.String(p.bus)}}})
	if err != nil {
		return err
	}
	if out.FailedEntryCount > 0 && len(out.Entries) > 0 {
		e := out.Entries[0]
		return fmt.Errorf("PutEvents refused the event: %s: %s", aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage))
	}
	return nil
}

func (p *eventBridgePublisher) close() error { return nil }
