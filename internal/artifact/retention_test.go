package artifact

import (
	"context"
	"slices"
	"testing"
)

func TestRotate(t *testing.T) {
	t.Parallel()
	loss := func(v float64) *float64 { return &v }
	cks := []Checkpoint{
		{Name: "step-10", Step: 10, Complete: true, Loss: loss(0.5), Best: true},
		{Name: "step-20", Step: 20, Complete: true, Loss: loss(0.9)},
		{Name: "step-30", Step: 30, Complete: false},
		{Name: "step-40", Step: 40, Complete: true, Loss: loss(0.8)},
		{Name: "step-50", Step: 50, Complete: true, Loss: loss(0.7)},
	}
	tests := []struct {
		name string
		p    Policy
		want []string
	}{
		{"no rotation", Policy{}, nil},
		{"last 2", Policy{KeepLast: 2}, []string{"step-10", "step-20"}},
		{"last 2 and best", Policy{KeepLast: 2, KeepBest: true}, []string{"step-20"}},
		{"last 1 and best", Policy{KeepLast: 1, KeepBest: true}, []string{"step-20", "step-40"}},
		{"more than there are", Policy{KeepLast: 9}, nil},
	}
	for _, tt := range tests {
		if got := Rotate(cks, tt.p); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Rotate = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRetainerSkipsWithoutLead(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	// Store is nil: a pass that ran would panic.
	r := &Retainer{Clusters: []Cluster{{Name: "dev", Policy: Policy{KeepLast: 1}}},
		Lead: func(context.Context) (func(), error) { cancel(); return nil, nil }}
	r.Run(ctx)
	released := false
	ctx, cancel = context.WithCancel(context.Background())
	r.Lead = func(context.Context) (func(), error) { cancel(); return func() { released = true }, nil }
	r.Clusters = nil
	r.Run(ctx)
	if !released {
		t.Fatal("a pass with the lead did not release it")
	}
}
