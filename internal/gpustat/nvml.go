package gpustat

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVML samples GPUs through the NVIDIA management library.
type NVML struct {
	devices []nvmlDevice
}

type nvmlDevice struct {
	index int
	dev   nvml.Device
}

// OpenNVML initialises NVML and selects the devices named by visible (the value of
// CUDA_VISIBLE_DEVICES: indices or GPU-UUIDs, comma-separated; empty means all). It
// returns an error wrapping ErrNoNVML when the library cannot be loaded.
func OpenNVML(visible string) (*NVML, error) {
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: %s", ErrNoNVML, nvml.ErrorString(ret))
	}
	n := &NVML{}
	ids := splitVisible(visible)
	if ids == nil {
		count, ret := nvml.DeviceGetCount()
		if ret != nvml.SUCCESS {
			nvml.Shutdown()
			return nil, fmt.Errorf("nvml device count: %s", nvml.ErrorString(ret))
		}
		for i := 0; i < count; i++ {
			ids = append(ids, strconv.Itoa(i))
		}
	}
	for pos, id := range ids {
		var dev nvml.Device
		var ret nvml.Return
		if i, err := strconv.Atoi(id); err == nil {
			dev, ret = nvml.DeviceGetHandleByIndex(i)
		} else {
			dev, ret = nvml.DeviceGetHandleByUUID(id)
		}
		if ret != nvml.SUCCESS {
			nvml.Shutdown()
			return nil, fmt.Errorf("nvml device %q: %s", id, nvml.ErrorString(ret))
		}
		n.devices = append(n.devices, nvmlDevice{index: pos, dev: dev})
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

// Sample reads every selected device. A metric a device does not support stays zero.
func (n *NVML) Sample() ([]GPU, error) {
	gpus := make([]GPU, 0, len(n.devices))
	for _, d := range n.devices {
		g := GPU{Index: d.index}
		if s, ret := d.dev.GetUUID(); ret == nvml.SUCCESS {
			g.UUID = s
		}
		if s, ret := d.dev.GetName(); ret == nvml.SUCCESS {
			g.Name = s
		}
		if u, ret := d.dev.GetUtilizationRates(); ret == nvml.SUCCESS {
			g.UtilizationPercent = int(u.Gpu)
		}
		if m, ret := d.dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemoryUsedMB, g.MemoryTotalMB = int(m.Used>>20), int(m.Total>>20)
		}
		if p, ret := d.dev.GetPowerUsage(); ret == nvml.SUCCESS {
			g.PowerWatts = float64(p) / 1000
		}
		if t, ret := d.dev.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			g.TemperatureC = int(t)
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// Close shuts NVML down.
func (n *NVML) Close() { nvml.Shutdown() }
