package mqtttest

import "errors"

// ErrClosed is wrapped by the errors of Broker.Start and Restart after the
// broker's Close, of ScriptedBroker.Accept after its Close, and of
// ScriptedConn.ReadFrame once the connection has ended. Check it with
// errors.Is.
var ErrClosed = errors.New("mqtttest: closed")
