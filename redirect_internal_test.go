package mqtt

import "testing"

// The redirect rule, case by case: TLS is never left; the hosts of Servers
// are allowed on any port; RedirectHosts adds names (any case, a trailing
// dot ignored), addresses (in any spelling), ports and "*.domain".
func TestRedirectPolicy(t *testing.T) {
	for _, tc := range []struct {
		servers, hosts []string
		from, target   string
		ok             bool
	}{
		{[]string{"tls://a.example"}, nil, "tls://a.example:8883", "tls://a.example:9999", true},
		{[]string{"tls://a.example"}, nil, "tls://a.example:8883", "wss://A.EXAMPLE:443/mqtt", true},
		{[]string{"tls://a.example"}, nil, "tls://a.example:8883", "tcp://a.example:1883", false},
		{[]string{"wss://a.example"}, nil, "wss://a.example:443/mqtt", "ws://a.example:80/mqtt", false},
		{[]string{"ssl://a.example"}, []string{"*"}, "ssl://a.example:8883", "mqtt://b.example:1883", false},
		{[]string{"tcp://a.example"}, nil, "tcp://a.example:1883", "tls://a.example:8883", true},
		{[]string{"tcp://a.example"}, nil, "tcp://a.example:1883", "tcp://b.example:1883", false},
		{[]string{"tcp://a.example"}, []string{"b.example."}, "tcp://a.example:1883", "tcp://B.example.:1883", true},
		{[]string{"tcp://a.example"}, []string{"b.example:1884"}, "tcp://a.example:1883", "tcp://b.example:1883", false},
		{[]string{"tcp://a.example"}, []string{"*.example"}, "tcp://a.example:1883", "tcp://b.example:1883", true},
		{[]string{"tcp://a.example"}, []string{"*.example"}, "tcp://a.example:1883", "tcp://example:1883", false},
		{[]string{"tcp://a.example"}, []string{"*.example"}, "tcp://a.example:1883", "tcp://bexample:1883", false},
		{[]string{"tcp://[::1]"}, nil, "tcp://[::1]:1883", "tcp://[0:0::1]:1884", true},
		{[]string{"tcp://a.example"}, []string{"[::1]:1883"}, "tcp://a.example:1883", "tcp://[::1]:1883", true},
		{[]string{"tcp://a.example"}, []string{"::1"}, "tcp://a.example:1883", "tcp://[::1]:2000", true},
		{[]string{"tcp://127.0.0.1"}, nil, "tcp://127.0.0.1:1883", "tcp://localhost:1883", false},
		{[]string{"ws://u:p@a.example"}, nil, "ws://u:xxxxx@a.example:80/mqtt", "ws://a.example:8080/mqtt", true},
	} {
		p, err := newRedirectPolicy(tc.servers, tc.hosts)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.servers, tc.hosts, err)
		}
		if err := p.check(tc.target, tc.from); (err == nil) != tc.ok {
			t.Errorf("Servers %v, RedirectHosts %v: %s to %s: %v, want allowed %t", tc.servers, tc.hosts, tc.from, tc.target, err, tc.ok)
		}
	}
}
