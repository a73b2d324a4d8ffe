package mosquitto

import "syscall"

// procAttr makes the kernel kill mosquitto if the test process dies without
// stopping it (killed, or a test timeout's panic), so that no broker
// outlives its test. (Strictly, when the thread that started it exits; Go
// keeps its threads unless a goroutine locked to one ends.) SIGKILL, not
// SIGTERM: Mosquitto 2.0 loses a SIGTERM that lands right after its start
// (see stopLocked), and nobody reads the database of a test that died.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
