package fleet

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// What the counter reports, one line per event: the kind, then the time in
// Unix nanoseconds (the parent and the counter share the machine's clock).
const (
	evAttempt    = 'a' // a client's SYN to the broker's port: one connection attempt
	evRetransmit = 't' // the same SYN again: the first got no answer (a full backlog drops SYNs)
	evAccepted   = 's' // the broker's port answered SYN-ACK: a listener took the attempt
	evRefused    = 'r' // the port answered RST to the SYN: no broker listened
	evReset      = 'x' // the broker's side reset an established connection
)

// serveCounter is the counter child: it watches the loopback interface
// and reports the TCP handshakes with the broker's port (SYN, SYN-ACK,
// RST), as the kernel sees them, whatever process listens there and
// whether one does. It needs CAP_NET_RAW. It runs until in reaches EOF.
//
// The clients dial the broker directly, so counting costs them nothing and
// holds no descriptor: a proxy would need two per client, and the
// descriptor limit (20000 here, with no CAP_SYS_RESOURCE to raise it)
// would stop the fleet short of 10,000.
func serveCounter(port string, in io.Reader, out io.Writer) error {
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	f, err := openLoopbackTap(uint16(p))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 1<<16)
	fmt.Fprintf(w, "addr 127.0.0.1:%d\n", p)
	if err := w.Flush(); err != nil {
		return err
	}
	events := make(chan tcpEvent, 1<<16)
	wrote := make(chan error, 1)
	go func() { wrote <- writeEvents(w, events) }()
	var closing atomic.Bool // a read error after it is set is the Close
	read := make(chan error, 1)
	go func() { read <- tap(f, uint16(p), events) }()
	io.Copy(io.Discard, in)
	// The drop count, read before the socket closes: packets the kernel
	// could not queue for us (our events would then undercount).
	drops := packetDrops(f)
	closing.Store(true)
	f.Close()
	rerr := <-read
	close(events)
	werr := <-wrote
	if drops > 0 {
		fmt.Fprintf(os.Stderr, "fleet counter: the kernel dropped %d packets before the counter read them\n", drops)
	}
	if rerr != nil && !closing.Load() {
		return rerr
	}
	return werr
}

// openLoopbackTap opens a packet socket on lo whose filter passes only
// TCP segments with SYN or RST set, to or from port, and only as received
// (loopback shows every packet twice: outgoing, then incoming).
func openLoopbackTap(port uint16) (*os.File, error) {
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, err
	}
	proto := int(htons(syscall.ETH_P_ALL))
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("a packet socket (needs CAP_NET_RAW): %w", err)
	}
	const (
		skfAdPkttype   = 0xfffff000 + 4 // SKF_AD_OFF + SKF_AD_PKTTYPE
		packetOutgoing = 4
		drop           = 255 // a label, resolved below
		accept         = 254
	)
	type ins struct {
		code   uint16
		k      uint32
		jt, jf uint8 // absolute targets (instruction index), or drop/accept
	}
	prog := []ins{
		{code: syscall.BPF_LD | syscall.BPF_W | syscall.BPF_ABS, k: skfAdPkttype},
		{code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, k: packetOutgoing, jt: drop, jf: 2},
		{code: syscall.BPF_LD | syscall.BPF_H | syscall.BPF_ABS, k: 12}, // ethertype
		{code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, k: 0x0800, jt: 4, jf: drop},
		{code: syscall.BPF_LD | syscall.BPF_B | syscall.BPF_ABS, k: 23}, // IP protocol
		{code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, k: syscall.IPPROTO_TCP, jt: 6, jf: drop},
		{code: syscall.BPF_LD | syscall.BPF_H | syscall.BPF_ABS, k: 20}, // fragment offset
		{code: syscall.BPF_JMP | syscall.BPF_JSET | syscall.BPF_K, k: 0x1fff, jt: drop, jf: 8},
		{code: syscall.BPF_LDX | syscall.BPF_B | syscall.BPF_MSH, k: 14}, // X = IP header length
		{code: syscall.BPF_LD | syscall.BPF_H | syscall.BPF_IND, k: 14},  // source port
		{code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, k: uint32(port), jt: 13, jf: 11},
		{code: syscall.BPF_LD | syscall.BPF_H | syscall.BPF_IND, k: 16}, // destination port
		{code: syscall.BPF_JMP | syscall.BPF_JEQ | syscall.BPF_K, k: uint32(port), jt: 13, jf: drop},
		{code: syscall.BPF_LD | syscall.BPF_B | syscall.BPF_IND, k: 27}, // TCP flags
		{code: syscall.BPF_JMP | syscall.BPF_JSET | syscall.BPF_K, k: 0x06, jt: accept, jf: drop},
		{code: syscall.BPF_RET | syscall.BPF_K, k: 128},
		{code: syscall.BPF_RET | syscall.BPF_K, k: 0},
	}
	const acceptAt, dropAt = 15, 16
	filter := make([]syscall.SockFilter, len(prog))
	for i, in := range prog {
		rel := func(t uint8) uint8 {
			switch t {
			case drop:
				t = dropAt
			case accept:
				t = acceptAt
			}
			return t - uint8(i) - 1
		}
		filter[i] = syscall.SockFilter{Code: in.code, K: in.k}
		if in.code&0x07 == syscall.BPF_JMP {
			filter[i].Jt, filter[i].Jf = rel(in.jt), rel(in.jf)
		}
	}
	if err := syscall.AttachLsf(fd, filter); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("attaching the filter: %w", err)
	}
	// Room for a burst of 10,000 handshakes while the reader is behind.
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 64<<20)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	// Nonblocking, the file reads through the runtime's poller, and Close
	// ends a pending Read.
	return os.NewFile(uintptr(fd), "lo-tap"), nil
}

// publisherIP is the source address of the storm's publisher, whose
// connections the counter leaves out.
const publisherIP = "\x7f\x00\x00\x02" // 127.0.0.2

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetDrops reads PACKET_STATISTICS: the packets dropped since the last
// read.
func packetDrops(f *os.File) uint32 {
	var st struct{ packets, drops uint32 }
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(st))
		syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_PACKET, 6, // PACKET_STATISTICS
			uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&l)), 0)
	})
	return st.drops
}

// kernelTime is the SCM_TIMESTAMPNS of a packet (Unix ns), or now.
func kernelTime(oob []byte) int64 {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
				return sec*1e9 + nsec
			}
		}
	}
	return time.Now().UnixNano()
}

// tap reads the segments and turns them into events until f is closed.
func tap(f *os.File, port uint16, events chan<- tcpEvent) error {
	type syn struct {
		seq      uint32
		answered bool
	}
	open := map[uint16]syn{} // by client port: SYNs not yet answered
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 256)
	oob := make([]byte, 256)
	for {
		// The kernel's receive timestamp, not the time this process got
		// round to reading: on two busy cores the counter is not always
		// scheduled, and reading late would bunch the events up.
		var n, oobn int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = syscall.Recvmsg(int(fd), buf, oob, 0)
			return rerr != syscall.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
		now := kernelTime(oob[:oobn])
		b := buf[:n]
		if len(b) < 14+20 {
			continue
		}
		ip := b[14:]
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl+14 {
			continue
		}
		if string(ip[12:16]) == publisherIP || string(ip[16:20]) == publisherIP {
			continue // the storm's publisher: not one of the fleet
		}
		tcp := ip[ihl:]
		sport, dport := binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:])
		seq := binary.BigEndian.Uint32(tcp[4:])
		flags := tcp[13]
		const fin, synF, rst, ack = 0x01, 0x02, 0x04, 0x10
		switch {
		case flags&synF != 0 && flags&ack == 0 && dport == port:
			if s, ok := open[sport]; ok && s.seq == seq {
				events <- tcpEvent{evRetransmit, now}
				continue
			}
			open[sport] = syn{seq: seq}
			events <- tcpEvent{evAttempt, now}
		case flags&synF != 0 && flags&ack != 0 && sport == port:
			if _, ok := open[dport]; ok {
				delete(open, dport)
				events <- tcpEvent{evAccepted, now}
			}
		case flags&rst != 0 && sport == port:
			if _, ok := open[dport]; ok {
				delete(open, dport)
				events <- tcpEvent{evRefused, now}
			} else {
				events <- tcpEvent{evReset, now}
			}
		}
	}
}

// writeEvents prints the events, flushing whenever none is waiting.
func writeEvents(w *bufio.Writer, events <-chan tcpEvent) error {
	var buf []byte
	for e := range events {
		buf = append(buf[:0], e.kind, ' ')
		buf = strconv.AppendInt(buf, e.at, 10)
		buf = append(buf, '\n')
		w.Write(buf)
		if len(events) == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

type tcpEvent struct {
	kind byte
	at   int64
}

// counterProc is the parent's handle on the counter child: it collects
// the events the counter reports.
type counterProc struct {
	*child
	read chan struct{} // closed once the counter's output has ended

	mu     sync.Mutex
	events []tcpEvent
}

func startCounter(brokerAddr string, stderr io.Writer) (*counterProc, error) {
	_, port, err := net.SplitHostPort(brokerAddr)
	if err != nil {
		return nil, err
	}
	c, err := spawnChild(roleCounter, stderr, 30*time.Second, addrEnv+"="+port)
	if err != nil {
		return nil, err
	}
	g := &counterProc{child: c, read: make(chan struct{})}
	go g.collect()
	return g, nil
}

func (g *counterProc) collect() {
	defer close(g.read)
	for {
		line, err := g.out.ReadSlice('\n')
		if len(line) > 3 {
			at, perr := strconv.ParseInt(string(line[2:len(line)-1]), 10, 64)
			if perr == nil {
				g.mu.Lock()
				g.events = append(g.events, tcpEvent{line[0], at})
				g.mu.Unlock()
			}
		}
		if err != nil {
			return
		}
	}
}

// since returns a copy of the events at or after t (none without a
// counter).
func (g *counterProc) since(t time.Time) []tcpEvent {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	from := t.UnixNano()
	var out []tcpEvent
	for _, e := range g.events {
		if e.at >= from {
			out = append(out, e)
		}
	}
	return out
}

func (g *counterProc) pid() int {
	if g == nil {
		return -1
	}
	return g.cmd.Process.Pid
}

// close stops the counter and waits until its events are all read.
func (g *counterProc) close() error {
	if g == nil {
		return nil
	}
	err := g.stop(30 * time.Second)
	<-g.read
	return err
}
