package gpustat

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fakeLib is an NVML with a fixed set of devices, recording Init and Shutdown.
type fakeLib struct {
	initErr, countErr error
	devs              []*fakeDev
	inits, shutdowns  int
}

func (l *fakeLib) Init() error { l.inits++; return l.initErr }
func (l *fakeLib) Shutdown()   { l.shutdowns++ }
func (l *fakeLib) DeviceCount() (int, error) {
	return len(l.devs), l.countErr
}
func (l *fakeLib) DeviceByIndex(i int) (device, error) {
	if i < 0 || i >= len(l.devs) {
		return nil, errors.New("Invalid Argument")
	}
	return l.devs[i], nil
}
func (l *fakeLib) DeviceByUUID(uuid string) (device, error) {
	for _, d := range l.devs {
		if d.uuid == uuid {
			return d, nil
		}
	}
	return nil, errors.New("Not Found")
}

// fakeDev answers each reading, or fails the ones named in unsupported.
type fakeDev struct {
	uuid, name  string
	util        int
	used, total uint64
	milliwatts  uint32
	temp        int
	unsupported string
}

var errNotSupported = errors.New("Not Supported")

func (d *fakeDev) read(what string) error {
	if strings.Contains(d.unsupported, what) {
		return errNotSupported
	}
	return nil
}
func (d *fakeDev) UUID() (string, error)            { return d.uuid, d.read("uuid") }
func (d *fakeDev) Name() (string, error)            { return d.name, d.read("name") }
func (d *fakeDev) UtilizationPercent() (int, error) { return d.util, d.read("util") }
func (d *fakeDev) Memory() (uint64, uint64, error)  { return d.used, d.total, d.read("memory") }
func (d *fakeDev) PowerMilliwatts() (uint32, error) { return d.milliwatts, d.read("power") }
func (d *fakeDev) TemperatureC() (int, error)       { return d.temp, d.read("temp") }

func threeGPUs() *fakeLib {
	return &fakeLib{devs: []*fakeDev{
		{uuid: "GPU-a", name: "H200", util: 10, used: 1 << 30, total: 140 << 30, milliwatts: 250500, temp: 40},
		{uuid: "GPU-b", name: "H200", util: 95, used: 70 << 30, total: 140 << 30, milliwatts: 690000, temp: 71},
		{uuid: "GPU-c", name: "A100", util: 0, used: 0, total: 80 << 30, milliwatts: 60000, temp: 30, unsupported: "power,temp"},
	}}
}

func TestSamplerSelectsVisibleDevices(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		visible string
		want    []GPU
	}{
		{"", []GPU{
			{Index: 0, UUID: "GPU-a", Name: "H200", UtilizationPercent: 10, MemoryUsedMB: 1024, MemoryTotalMB: 143360, PowerWatts: 250.5, TemperatureC: 40},
			{Index: 1, UUID: "GPU-b", Name: "H200", UtilizationPercent: 95, MemoryUsedMB: 71680, MemoryTotalMB: 143360, PowerWatts: 690, TemperatureC: 71},
			{Index: 2, UUID: "GPU-c", Name: "A100", MemoryTotalMB: 81920},
		}},
		// CUDA numbers the visible devices from 0: index is the position, not NVML's.
		{"2,1", []GPU{
			{Index: 0, UUID: "GPU-c", Name: "A100", MemoryTotalMB: 81920},
			{Index: 1, UUID: "GPU-b", Name: "H200", UtilizationPercent: 95, MemoryUsedMB: 71680, MemoryTotalMB: 143360, PowerWatts: 690, TemperatureC: 71},
		}},
		{"GPU-b", []GPU{{Index: 0, UUID: "GPU-b", Name: "H200", UtilizationPercent: 95, MemoryUsedMB: 71680, MemoryTotalMB: 143360, PowerWatts: 690, TemperatureC: 71}}},
	} {
		lib := threeGPUs()
		n, err := open(lib, tc.visible)
		if err != nil {
			t.Fatalf("visible %q: %v", tc.visible, err)
		}
		got, err := n.Sample()
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("visible %q: sample %+v, %v\nwant %+v", tc.visible, got, err, tc.want)
		}
		n.Close()
		if lib.inits != 1 || lib.shutdowns != 1 {
			t.Errorf("visible %q: %d inits, %d shutdowns; want one each", tc.visible, lib.inits, lib.shutdowns)
		}
	}
}

func TestSamplerOpenErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		lib     *fakeLib
		visible string
		want    string
		noNVML  bool
		shut    int
	}{
		{"no library", &fakeLib{initErr: errors.New("Library Not Found")}, "", "NVML not available: Library Not Found", true, 0},
		{"count fails", &fakeLib{countErr: errors.New("Unknown Error")}, "", "nvml device count: Unknown Error", false, 1},
		{"bad index", threeGPUs(), "0,7", `nvml device "7": Invalid Argument`, false, 1},
		{"bad uuid", threeGPUs(), "GPU-x", `nvml device "GPU-x": Not Found`, false, 1},
	} {
		_, err := open(tc.lib, tc.visible)
		if err == nil || err.Error() != tc.want || errors.Is(err, ErrNoNVML) != tc.noNVML {
			t.Errorf("%s: error %v, want %q (ErrNoNVML: %v)", tc.name, err, tc.want, tc.noNVML)
		}
		if tc.lib.shutdowns != tc.shut {
			t.Errorf("%s: %d shutdowns, want %d", tc.name, tc.lib.shutdowns, tc.shut)
		}
	}
}
