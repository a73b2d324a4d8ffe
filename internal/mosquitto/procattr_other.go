//go:build !linux

package mosquitto

import "syscall"

// procAttr is empty where the kernel cannot tie the child's life to ours.
func procAttr() *syscall.SysProcAttr { return nil }
