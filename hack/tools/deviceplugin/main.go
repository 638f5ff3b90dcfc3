// Command tideserve-device-plugin advertises GPUs that are not there, through the
// kubelet's device plugin API (v1beta1), so that the test bed's real node carries GPU
// identities: the scheduler places nvidia.com/gpu (and MIG slice) requests on it and the
// kubelet admits them and allocates devices the real way, while the pods run on CPU.
//
//	tideserve-device-plugin --dir <kubelet root>/device-plugins \
//	    --resource nvidia.com/gpu=2 --resource nvidia.com/mig-1g.10gb=2
//
// Each resource gets its own gRPC server on a socket in --dir and registers with the
// kubelet there. Allocate hands each container NVIDIA_VISIBLE_DEVICES=<its device IDs>,
// as NVIDIA's plugin does. The kubelet removes the sockets in --dir when it restarts; a
// resource whose socket has gone serves and registers again.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type resourceFlags []string

func (r *resourceFlags) String() string     { return strings.Join(*r, ",") }
func (r *resourceFlags) Set(v string) error { *r = append(*r, v); return nil }

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	resource string
	devices  []*pluginapi.Device
	socket   string
	server   *grpc.Server
}

func newPlugin(dir, spec string) (*plugin, error) {
	name, countText, ok := strings.Cut(spec, "=")
	count, err := strconv.Atoi(countText)
	if !ok || err != nil || count < 1 || !strings.Contains(name, "/") {
		return nil, fmt.Errorf("--resource wants <domain>/<name>=<count>, got %q", spec)
	}
	short := name[strings.LastIndex(name, "/")+1:]
	p := &plugin{resource: name, socket: filepath.Join(dir, "tideserve-"+short+".sock")}
	for i := 0; i < count; i++ {
		id := fmt.Sprintf("tideserve-%s-%d", short, i)
		p.devices = append(p.devices, &pluginapi.Device{ID: id, Health: pluginapi.Healthy})
	}
	return p, nil
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the devices once; they never change (nothing real can fail).
func (p *plugin) ListAndWatch(_ *pluginapi.Empty, s grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	known := map[string]bool{}
	for _, d := range p.devices {
		known[d.ID] = true
	}
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		for _, id := range c.DevicesIds {
			if !known[id] {
				return nil, fmt.Errorf("%s: unknown device %q", p.resource, id)
			}
		}
		log.Printf("%s: allocated %v", p.resource, c.DevicesIds)
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(c.DevicesIds, ",")},
		})
	}
	return resp, nil
}

func (p *plugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

// start serves on the plugin's socket and registers it with the kubelet in dir.
func (p *plugin) start(dir string) error {
	if p.server != nil {
		p.server.Stop()
	}
	_ = os.Remove(p.socket)
	listener, err := net.Listen("unix", p.socket)
	if err != nil {
		return err
	}
	p.server = grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(p.server, p)
	go func() { _ = p.server.Serve(listener) }()
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(p.socket),
		ResourceName: p.resource,
		Options:      &pluginapi.DevicePluginOptions{},
	})
	if err != nil {
		return fmt.Errorf("register %s with the kubelet: %w", p.resource, err)
	}
	log.Printf("%s: %d devices registered (%s)", p.resource, len(p.devices), p.socket)
	return nil
}

func main() {
	dir := flag.String("dir", pluginapi.DevicePluginPath, "the kubelet's device-plugins directory")
	var specs resourceFlags
	flag.Var(&specs, "resource", "<resource>=<count>, repeatable (e.g. nvidia.com/gpu=2)")
	flag.Parse()
	if len(specs) == 0 {
		log.Fatal("no --resource given")
	}
	var plugins []*plugin
	for _, spec := range specs {
		p, err := newPlugin(*dir, spec)
		if err != nil {
			log.Fatal(err)
		}
		plugins = append(plugins, p)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for _, p := range plugins {
			// Not serving yet, or the kubelet restarted and wiped the directory.
			if _, err := os.Stat(p.socket); p.server == nil || err != nil {
				if err := p.start(*dir); err != nil {
					log.Printf("%v (retrying)", err)
					if p.server != nil {
						p.server.Stop()
						p.server = nil
					}
				}
			}
		}
		select {
		case <-stop:
			for _, p := range plugins {
				if p.server != nil {
					p.server.Stop()
				}
				_ = os.Remove(p.socket)
			}
			return
		case <-tick.C:
		}
	}
}
