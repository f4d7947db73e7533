package gpustat

import (
	"fmt"
	"strconv"
	"strings"
)

// library is the part of NVML the sampler uses; nvml.go adapts the real library (cgo),
// the tests use a fake.
type library interface {
	Init() error
	Shutdown()
	DeviceCount() (int, error)
	DeviceByIndex(i int) (device, error)
	DeviceByUUID(uuid string) (device, error)
}

// device is one GPU's readings; each fails on its own when the device lacks it.
type device interface {
	UUID() (string, error)
	Name() (string, error)
	UtilizationPercent() (int, error)
	Memory() (used, total uint64, err error)
	PowerMilliwatts() (uint32, error)
	TemperatureC() (int, error)
}

// NVML samples GPUs through the NVIDIA management library.
type NVML struct {
	lib     library
	devices []device
}

// OpenNVML initialises NVML and selects the devices named by visible (the value of
// CUDA_VISIBLE_DEVICES: indices or GPU-UUIDs, comma-separated; empty means all). It
// returns an error wrapping ErrNoNVML when the library cannot be loaded.
func OpenNVML(visible string) (*NVML, error) {
	lib, err := loadLibrary()
	if err != nil {
		return nil, err
	}
	return open(lib, visible)
}

func open(lib library, visible string) (*NVML, error) {
	if err := lib.Init(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoNVML, err)
	}
	n := &NVML{lib: lib}
	ids := splitVisible(visible)
	if ids == nil {
		count, err := lib.DeviceCount()
		if err != nil {
			lib.Shutdown()
			return nil, fmt.Errorf("nvml device count: %w", err)
		}
		for i := range count {
			ids = append(ids, strconv.Itoa(i))
		}
	}
	for _, id := range ids {
		var d device
		var err error
		if i, aerr := strconv.Atoi(id); aerr == nil {
			d, err = lib.DeviceByIndex(i)
		} else {
			d, err = lib.DeviceByUUID(id)
		}
		if err != nil {
			lib.Shutdown()
			return nil, fmt.Errorf("nvml device %q: %w", id, err)
		}
		n.devices = append(n.devices, d)
	}
	return n, nil
}

func splitVisible(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Sample reads every selected device; Index is the position among the job's visible
// devices (as CUDA numbers them). A metric a device does not support stays zero.
func (n *NVML) Sample() ([]GPU, error) {
	gpus := make([]GPU, 0, len(n.devices))
	for pos, d := range n.devices {
		g := GPU{Index: pos}
		if s, err := d.UUID(); err == nil {
			g.UUID = s
		}
		if s, err := d.Name(); err == nil {
			g.Name = s
		}
		if u, err := d.UtilizationPercent(); err == nil {
			g.UtilizationPercent = u
		}
		if used, total, err := d.Memory(); err == nil {
			g.MemoryUsedMB, g.MemoryTotalMB = int(used>>20), int(total>>20)
		}
		if p, err := d.PowerMilliwatts(); err == nil {
			g.PowerWatts = float64(p) / 1000
		}
		if t, err := d.TemperatureC(); err == nil {
			g.TemperatureC = t
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// Close shuts NVML down.
func (n *NVML) Close() { n.lib.Shutdown() }
