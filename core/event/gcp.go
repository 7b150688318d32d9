package event

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/protobuf/encoding/protojson"
)

// PubSubMessage is a Pub/Sub message as push deliveries and functions-framework CloudEvents carry it.
type PubSubMessage struct {
	Data        []byte            `json:"data"` // base64 in JSON
	Attributes  map[string]string `json:"attributes"`
	MessageID   string            `json:"messageId"`
	PublishTime time.Time         `json:"publishTime"`
}

// MessagePublished is the data of a google.cloud.pubsub.topic.v1.messagePublished CloudEvent, and the
// body of a Pub/Sub push request.
type MessagePublished struct {
	Message      PubSubMessage `json:"message"`
	Subscription string        `json:"subscription"`
}

// DecodeMessagePublished decodes a messagePublished CloudEvent's data (or a push body).
func DecodeMessagePublished(raw []byte) (Decoded, error) {
	const what = "Pub/Sub message"
	if _, err := object(raw, what); err != nil {
		return Decoded{}, err
	}
	var m MessagePublished
	if err := json.Unmarshal(raw, &m); err != nil {
		return Decoded{}, &DecodeError{Source: what, Reason: jsonReason(err)}
	}
	return DecodePubSub(m.Message)
}

var (
	secretPath  = regexp.MustCompile(`^projects/([^/]+)/(?:locations/[^/]+/)?secrets/([^/]+)$`)
	versionPath = regexp.MustCompile(`^projects/([^/]+)/(?:locations/[^/]+/)?secrets/([^/]+)/versions/([^/]+)$`)
)

// DecodePubSub decodes a Secret Manager notification, or a scheduler message ({"job": "sweep"}) sent
// through Pub/Sub.
func DecodePubSub(m PubSubMessage) (Decoded, error) {
	const what = "Secret Manager notification"
	typ := m.Attributes["eventType"]
	if typ == "" {
		var in struct {
			Job string `json:"job"`
		}
		if json.Unmarshal(m.Data, &in) == nil && in.Job != "" {
			return Decoded{Schedule: &Schedule{Job: in.Job, Time: m.PublishTime}}, nil
		}
		return Decoded{}, &DecodeError{Source: what, Reason: "no eventType attribute and no job"}
	}
	ch := Change{ID: m.MessageID, Service: ServiceSecretManager, Reason: typ}
	ch.Time, _ = time.Parse(time.RFC3339Nano, m.Attributes["timestamp"])
	switch typ {
	case "TOPIC_CONFIGURED":
		return Decoded{}, Ignored("topic configuration test message")
	case "SECRET_CREATE", "SECRET_UPDATE":
		return Decoded{}, Ignored("%s changes metadata only (the sweep reconciles labels)", typ)
	case "SECRET_DELETE":
		ch.Kind = KindDelete
	case "SECRET_ROTATE":
		ch.Kind = KindRotate
	case "SECRET_VERSION_ADD", "SECRET_VERSION_ENABLE", "SECRET_VERSION_DISABLE", "SECRET_VERSION_DESTROY",
		"SECRET_VERSION_DESTROY_SCHEDULED":
		ch.Kind = KindWrite
	default:
		return Decoded{}, &DecodeError{Source: what, Reason: "unknown eventType " + safe(typ)}
	}
	um := protojson.UnmarshalOptions{DiscardUnknown: true}
	name := m.Attributes["secretId"]
	if strings.HasPrefix(typ, "SECRET_VERSION_") {
		var v secretmanagerpb.SecretVersion
		if len(m.Data) > 0 {
			if err := um.Unmarshal(m.Data, &v); err != nil {
				return Decoded{}, &DecodeError{Source: what, Reason: "data is not a SecretVersion: " + protoReason(err)}
			}
		}
		vn := m.Attributes["versionId"]
		if vn == "" {
			vn = v.GetName()
		}
		if mm := versionPath.FindStringSubmatch(vn); mm != nil {
			ch.Project, ch.Name, ch.Version = mm[1], mm[2], mm[3]
		}
	} else if len(m.Data) > 0 {
		var s secretmanagerpb.Secret
		if err := um.Unmarshal(m.Data, &s); err != nil {
			return Decoded{}, &DecodeError{Source: what, Reason: "data is not a Secret: " + protoReason(err)}
		}
		if name == "" {
			name = s.GetName()
		}
	}
	if ch.Name == "" {
		if mm := secretPath.FindStringSubmatch(name); mm != nil {
			ch.Project, ch.Name = mm[1], mm[2]
		}
	}
	if ch.Name == "" {
		return Decoded{}, &DecodeError{Source: what, Reason: "no secret named in secretId, versionId or data"}
	}
	return Decoded{Change: &ch}, nil
}

func protoReason(err error) string {
	if err == nil {
		return ""
	}
	// protojson errors quote the offending input: keep only the kind of problem.
	s := err.Error()
	if i := strings.Index(s, ":"); i >= 0 {
		s = s[:i]
	}
	return safe(strings.TrimSpace(s))
}

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
