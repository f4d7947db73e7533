package job

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

// TestCheckPathEdges: the edges TestCheckPath leaves out: exactly 4096 bytes is
// accepted, DEL and other control characters are refused, and each refusal says why.
func TestCheckPathEdges(t *testing.T) {
	t.Parallel()
	long := "/" + strings.Repeat("a", 4095)
	tests := []struct {
		in, want string // want: "" = accepted, else a part of the error
	}{
		{"/data/with space.jsonl", ""},
		{long, ""},
		{long + "b", "longer than 4096"},
		{"", "is required"},
		{"data/train.jsonl", "absolute path"},
		{"/data/\x1ftrain", "control characters"},
		{"/data/\x7ftrain", "control characters"},
		{"/data/../etc/passwd", "clean path"},
	}
	for _, tt := range tests {
		err := CheckPath(tt.in)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CheckPath(%.40q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

// TestErrorText: the error text carries code, message and cause; the client sees the
// message only.
func TestErrorText(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection reset")
	e := &Error{Code: EUnavailable, Message: "cluster unreachable", Err: cause}
	if got := e.Error(); got != "unavailable: cluster unreachable: connection reset" {
		t.Errorf("Error() = %q", got)
	}
	if got := Errorf(ENotFound, "job %s not found", "j").Error(); got != "not_found: job j not found" {
		t.Errorf("Error() without cause = %q", got)
	}
	if !errors.Is(e, cause) || ErrorMessage(e) != "cluster unreachable" || ErrorCode(nil) != "" || ErrorCode(cause) != EInternal {
		t.Errorf("Is/ErrorMessage/ErrorCode: %v %q %q %q", errors.Is(e, cause), ErrorMessage(e), ErrorCode(nil), ErrorCode(cause))
	}
}

// TestDecodeSpecOtherErrors: an error with no friendlier wording (here the body cannot
// be read) is still EInvalid, prefixed with "body: ".
func TestDecodeSpecOtherErrors(t *testing.T) {
	t.Parallel()
	_, err := DecodeSpec(iotest.ErrReader(errors.New("connection reset by peer")))
	if ErrorCode(err) != EInvalid || ErrorMessage(err) != "body: connection reset by peer" {
		t.Fatalf("DecodeSpec = %v, want EInvalid with a body: message", err)
	}
}
