package mqtttest_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// An outage: while the broker is stopped its port refuses connections;
// after Start it listens on the same port with the same sessions.
func ExampleBroker_Restart() {
	b, err := mqtttest.StartBroker()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	if err := b.Stop(); err != nil {
		fmt.Println(err)
		return
	}
	_, err = net.Dial("tcp", b.Addr())
	fmt.Println("stopped, dial fails:", err != nil)

	if err := b.Start(); err != nil {
		fmt.Println(err)
		return
	}
	c, err := net.Dial("tcp", b.Addr())
	fmt.Println("started, dial works:", err == nil)
	c.Close()
	// Output:
	// stopped, dial fails: true
	// started, dial works: true
}

// A proxy in front of the broker cuts every connection through it.
func ExampleProxy_Cut() {
	b, err := mqtttest.StartBroker()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	p, err := mqtttest.StartProxy(b.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr()) // a client would use p.URL()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	// Cut acts on the connections the proxy has accepted so far.
	err = p.WaitStats(context.Background(), func(s mqtttest.ProxyStats) bool { return s.Active == 1 })
	if err != nil {
		fmt.Println(err)
		return
	}
	p.Cut()
	_, err = c.Read(make([]byte, 1))
	fmt.Println(err == io.EOF)
	// Output:
	// true
}
