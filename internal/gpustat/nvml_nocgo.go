//go:build !cgo

package gpustat

import "fmt"

// loadLibrary fails: NVML is reached through cgo, and this binary was built without it.
func loadLibrary() (library, error) {
	return nil, fmt.Errorf("%w: built without cgo", ErrNoNVML)
}
