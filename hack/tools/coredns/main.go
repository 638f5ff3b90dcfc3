// Command coredns is CoreDNS with only the plugins the test bed's cluster DNS uses:
// names of Services and pods from the API server (kubernetes), a cache, errors, ready and
// bind (it listens on the real node's bridge only). The full CoreDNS links every
// cloud provider's SDK; this build does not. ready: /ready once the
// kubernetes plugin has synced, which hack/cluster up waits for.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The order of the plugin chain, as in CoreDNS's own plugin.cfg.
	dnsserver.Directives = []string{"bind", "ready", "errors", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
