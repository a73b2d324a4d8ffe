package mosquitto

import "syscall"

// procAttr makes the kernel send mosquitto SIGTERM if the test process dies
// without stopping it (killed, or a test timeout's panic), so that no broker
// outlives its test. (Strictly, when the thread that started it exits; Go
// keeps its threads unless a goroutine locked to one ends.)
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
