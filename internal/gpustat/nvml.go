//go:build cgo

package gpustat

import (
	"errors"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// loadLibrary returns the real NVML (loaded by Init).
func loadLibrary() (library, error) { return nvmlLibrary{nvml.New()}, nil }

// nvmlLibrary adapts go-nvml to library: each call is one NVML call, its Return turned
// into an error.
type nvmlLibrary struct{ nvml.Interface }

func (l nvmlLibrary) check(ret nvml.Return) error {
	if ret == nvml.SUCCESS {
		return nil
	}
	return errors.New(l.ErrorString(ret))
}

func (l nvmlLibrary) Init() error { return l.check(l.Interface.Init()) }
func (l nvmlLibrary) Shutdown()   { _ = l.Interface.Shutdown() }

func (l nvmlLibrary) DeviceCount() (int, error) {
	n, ret := l.DeviceGetCount()
	return n, l.check(ret)
}

func (l nvmlLibrary) DeviceByIndex(i int) (device, error) {
	d, ret := l.DeviceGetHandleByIndex(i)
	return nvmlDevice{d, l}, l.check(ret)
}

func (l nvmlLibrary) DeviceByUUID(uuid string) (device, error) {
	d, ret := l.DeviceGetHandleByUUID(uuid)
	return nvmlDevice{d, l}, l.check(ret)
}

type nvmlDevice struct {
	d nvml.Device
	l nvmlLibrary
}

func (d nvmlDevice) UUID() (string, error) {
	s, ret := d.d.GetUUID()
	return s, d.l.check(ret)
}

func (d nvmlDevice) Name() (string, error) {
	s, ret := d.d.GetName()
	return s, d.l.check(ret)
}

func (d nvmlDevice) UtilizationPercent() (int, error) {
	u, ret := d.d.GetUtilizationRates()
	return int(u.Gpu), d.l.check(ret)
}

func (d nvmlDevice) Memory() (uint64, uint64, error) {
	m, ret := d.d.GetMemoryInfo()
	return m.Used, m.Total, d.l.check(ret)
}

func (d nvmlDevice) PowerMilliwatts() (uint32, error) {
	p, ret := d.d.GetPowerUsage()
	return p, d.l.check(ret)
}

func (d nvmlDevice) TemperatureC() (int, error) {
	t, ret := d.d.GetTemperature(nvml.TEMPERATURE_GPU)
	return int(t), d.l.check(ret)
}
