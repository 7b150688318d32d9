package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Notification route types.
const (
	NotifySNS         = "sns"
	NotifyEventBridge = "eventbridge"
	NotifyEventGrid   = "eventgrid"
	NotifyPubSub      = "pubsub"
	NotifyLog         = "log"
)

// NotifyTypes lists the route types in the order the documentation presents them.
var NotifyTypes = []string{NotifySNS, NotifyEventBridge, NotifyEventGrid, NotifyPubSub, NotifyLog}

// NotifyKinds are the kinds of notification keyferry sends; a route may subscribe to some of them.
var NotifyKinds = []string{"replication.conflict", "replication.refused", "replication.failed",
	"rotation.failed", "certificate.expiring", "certificate.expired", "certificate.renewal-failed"}

// NotifyRoute is one entry of `notify:`: where alerts (a foreign write to a replica, a refusal, an expiring
// certificate) are published for operators to route.
type NotifyRoute struct {
	Type     string   // one of the Notify* constants
	Topic    string   // SNS topic ARN, Event Grid topic endpoint, Pub/Sub topic (projects/P/topics/T)
	Bus      string   // EventBridge event bus name or ARN (default "default")
	Region   string   // AWS region (sns, eventbridge); for SNS it defaults to the ARN's
	Kinds    []string // only these kinds; empty: all
	Local    bool     // a route of the local cloud
	Endpoint string   // local routes only
	CAFile   string   // local routes only
	Line     int
}

var notifyKeys = []string{"type", "topic", "bus", "region", "kinds", "local", "endpoint", "ca_file"}

var (
	snsTopicARN   = lazyRegexp(`^arn:aws(-[a-z]+)*:sns:([a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}):[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)
	eventBusName  = lazyRegexp(`^([A-Za-z0-9._/-]{1,256}|arn:aws(-[a-z]+)*:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._/-]{1,256})$`)
	pubsubTopic   = lazyRegexp(`^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)
	eventGridHost = regexp.MustCompile(`^[a-z0-9-]{3,50}\.[a-z0-9-]+\.eventgrid\.azure\.net$`)
)

func (p *parser) parseNotify(cfg *Config, key, val *yaml.Node) {
	const path = "notify"
	n := resolve(val)
	switch {
	case n == nil || isNull(n):
		return
	case n.Kind != yaml.SequenceNode:
		p.errorf(key, path, "must be a list of routes such as [{type: sns, topic: arn:aws:sns:eu-west-1:123456789012:keyferry-alerts}], not %s", kindName(n))
		p.credentialsIn(n, path)
		return
	}
	for i, item := range n.Content {
		if r := p.parseRoute(item, fmt.Sprintf("%s[%d]", path, i)); r != nil {
			cfg.Notify = append(cfg.Notify, *r)
		}
	}
}

func (p *parser) parseRoute(item *yaml.Node, path string) *NotifyRoute {
	m := resolve(item)
	if m == nil || m.Kind != yaml.MappingNode {
		p.errorf(item, path, "a route must be a mapping with type and topic, not %s", kindName(item))
		if m != nil {
			p.credentialsIn(m, path)
		}
		return nil
	}
	fields := p.fieldsOf(m, path, notifyKeys, "routes")
	r := &NotifyRoute{Line: item.Line}
	f, has := fields["type"]
	if !has {
		p.errorf(item, path, "type is required: add `type:` with one of %s", strings.Join(NotifyTypes, ", "))
		return nil
	}
	p.enum(fields, "type", &r.Type, NotifyTypes, "where notifications are published")
	if r.Type == "" {
		return nil
	}
	if g, ok := fields["local"]; ok {
		r.Local, _ = p.boolean(g)
	}
	ok := true
	need := func(key, example string) {
		if _, has := fields[key]; !has {
			p.errorf(f.key, path, "%s is required for %s routes: add `%s`", key, r.Type, example)
			ok = false
		}
	}
	refuse := func(key string) {
		if g, has := fields[key]; has {
			p.errorf(g.key, g.path, "is not a setting of %s routes: remove it", r.Type)
			ok = false
		}
	}
	switch r.Type {
	case NotifySNS:
		need("topic", "topic: arn:aws:sns:eu-west-1:123456789012:keyferry-alerts")
		refuse("bus")
		p.check(fields, "topic", &r.Topic, func(v string) string {
			if m := snsTopicARN().FindStringSubmatch(v); m != nil {
				r.Region = m[2]
				return ""
			}
			return "%v is not an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:keyferry-alerts"
		})
		p.check(fields, "region", &r.Region, checkAWSRegion)
	case NotifyEventBridge:
		need("region", "region: eu-west-1")
		refuse("topic")
		r.Bus = "default"
		p.check(fields, "bus", &r.Bus, func(v string) string {
			if eventBusName().MatchString(v) {
				return ""
			}
			return "%v is not an event bus name or ARN: write one such as keyferry or default"
		})
		p.check(fields, "region", &r.Region, checkAWSRegion)
	case NotifyEventGrid:
		need("topic", "topic: https://keyferry-alerts.westeurope-1.eventgrid.azure.net/api/events")
		refuse("bus")
		refuse("region")
		p.check(fields, "topic", &r.Topic, func(v string) string { return checkEventGridTopic(v, r.Local) })
	case NotifyPubSub:
		need("topic", "topic: projects/kf-prod/topics/keyferry-alerts")
		refuse("bus")
		refuse("region")
		p.check(fields, "topic", &r.Topic, func(v string) string {
			if pubsubTopic().MatchString(v) {
				return ""
			}
			return "%v is not a Pub/Sub topic: write its full name, such as projects/kf-prod/topics/keyferry-alerts"
		})
	case NotifyLog:
		for _, k := range []string{"topic", "bus", "region", "endpoint", "ca_file"} {
			refuse(k)
		}
	}
	if g, has := fields["kinds"]; has {
		r.Kinds = p.strings(g, "a notification kind", func(v string) string {
			if slices.Contains(NotifyKinds, v) {
				return ""
			}
			return "%v is not a notification kind: the kinds are " + strings.Join(NotifyKinds, ", ")
		})
	}
	if g, has := fields["endpoint"]; has && r.Type != NotifyLog {
		if !r.Local {
			p.errorf(g.key, g.path, "endpoint is only for routes of the local cloud: add `local: true`, or remove endpoint to reach the real service")
		} else {
			p.check(fields, "endpoint", &r.Endpoint, checkLocalEndpoint)
		}
	}
	if g, has := fields["ca_file"]; has && r.Type != NotifyLog {
		if !r.Local {
			p.errorf(g.key, g.path, "ca_file is only for routes of the local cloud: add `local: true`, or remove it")
		} else if v, good := p.str(g); good {
			r.CAFile = p.abs(v)
		}
	}
	if !ok {
		return nil
	}
	return r
}

func checkEventGridTopic(v string, local bool) string {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return "%v is not a URL: give the topic endpoint, such as https://keyferry-alerts.westeurope-1.eventgrid.azure.net/api/events"
	}
	if u.Scheme != "https" {
		return "must be an https URL, not %v"
	}
	if local && isLoopback(u.Hostname()) {
		return ""
	}
	if !eventGridHost.MatchString(u.Hostname()) {
		return "%v is not an Event Grid topic endpoint: give one such as https://keyferry-alerts.westeurope-1.eventgrid.azure.net/api/events"
	}
	return ""
}
