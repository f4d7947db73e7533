package version

import "testing"

func TestOlder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b      string
		older, ok bool
	}{
		{"v0.1.0", "v0.2.0", true, true},
		{"v0.2.0", "v0.1.0", false, true},
		{"v0.2.0", "v0.2.0", false, true},
		{"v0.10.0", "v0.9.0", false, true},
		{"v1.0.0", "v0.99.99", false, true},
		{"v0.2.0-rc1", "v0.2.0", true, true},
		{"v0.2.0", "v0.2.0-rc1", false, true},
		{"v0.2.0-rc1", "v0.2.0-rc2", true, true},
		{"v0.2.1-3-gabcdef", "v0.2.0", false, true},
		{"v1.2.3+meta", "v1.2.4", true, true},
		{"dev", "v0.1.0", false, false},
		{"v0.1.0", "", false, false},
		{"v0.1", "v0.1.0", false, false},
		{"1.2.3", "v1.2.3", false, false},
		{"v1.x.3", "v1.2.3", false, false},
	} {
		older, ok := Older(tc.a, tc.b)
		if older != tc.older || ok != tc.ok {
			t.Errorf("Older(%q, %q) = %v, %v; want %v, %v", tc.a, tc.b, older, ok, tc.older, tc.ok)
		}
	}
	if _, ok := parse(MinClient); !ok {
		t.Errorf("MinClient %q is not a semantic version", MinClient)
	}
}
