package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The signature scheme (docs/webhooks.md): every delivery carries
//
//	Ftgate-Webhook-Id:        the delivery's idempotency id (also the body's id)
//	Ftgate-Webhook-Event:     the event, e.g. job.succeeded
//	Ftgate-Webhook-Timestamp: the attempt's time, Unix seconds
//	Ftgate-Webhook-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// where secret is the endpoint's secret string as shown at registration (its bytes,
// prefix included). A receiver recomputes the HMAC over the raw body, compares in
// constant time and refuses timestamps further than ReplayWindow from its clock.
const (
	HeaderID        = "Ftgate-Webhook-Id"
	HeaderEvent     = "Ftgate-Webhook-Event"
	HeaderTimestamp = "Ftgate-Webhook-Timestamp"
	HeaderSignature = "Ftgate-Webhook-Signature"
	// SignatureVersion prefixes the signature in HeaderSignature.
	SignatureVersion = "v1"
	// ReplayWindow is how far a receiver should accept a timestamp from its clock.
	ReplayWindow = 5 * time.Minute
)

// Sign returns the HeaderSignature value of body sent at ts with secret.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return SignatureVersion + "=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery as a receiver does: the timestamp header within window of
// now and one of the signature header's comma-separated v1 values matching body.
func Verify(secret, timestamp, signature string, body []byte, now time.Time, window time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: not Unix seconds", timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > window || d < -window {
		return fmt.Errorf("timestamp %d is %s from now, outside the %s replay window", ts, d.Round(time.Second), window)
	}
	want := Sign(secret, ts, body)
	for _, s := range strings.Split(signature, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(s)), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature does not match")
}
