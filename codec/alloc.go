package codec

import "unsafe"

// Decoding a PUBLISH with ReadPacket or Decode costs one allocation: the *Publish and the
// frame's body (which its Topic and Payload point into) live in one block, a
// publishBlock whose buffer is the
// smallest of the sizes below that holds the body. The sizes follow the Go allocator's
// size classes up to 32 KiB, so the block wastes nothing the allocator would not round
// up anyway, and then grow by quarter octaves, wasting at most a fifth, up to 1 MiB. A
// larger body gets its own allocation (two or more in all), which is noise next to its
// size.
//
// This is safe for the garbage collector: the Publish comes first in the block, so the
// block's pointers are all in its head and the collector never scans the bytes; Topic and
// Payload are interior pointers that keep the whole block alive. The body buffer is fresh
// and never reused, the topic bytes are reachable only through the string, and Payload's
// capacity ends at the frame's end, so nothing can write over the topic.
//
// The block still costs more than the body alone: it must be zeroed, the allocator
// records where its pointers are, and the collector looks at it. ReadPacketInto and
// DecodeInto, whose caller supplies the Publish, allocate only a pointer-free copy of the
// body (make and copy, not zeroed), which is why they are faster.
type publishBlock[B any] struct {
	p   Publish
	buf B
}

const publishSize = int(unsafe.Sizeof(Publish{}))

// newPublishIn allocates a block with buffer type B (a byte array of at least n bytes).
func newPublishIn[B any](n int) (*Publish, []byte) {
	blk := new(publishBlock[B])
	return &blk.p, unsafe.Slice((*byte)(unsafe.Pointer(&blk.buf)), n)
}

// publishClasses are the block sizes, in increasing order of capacity.
var publishClasses = [...]struct {
	capacity int
	alloc    func(n int) (*Publish, []byte)
}{
	{64 - publishSize, newPublishIn[[64 - publishSize]byte]},
	{80 - publishSize, newPublishIn[[80 - publishSize]byte]},
	{96 - publishSize, newPublishIn[[96 - publishSize]byte]},
	{112 - publishSize, newPublishIn[[112 - publishSize]byte]},
	{128 - publishSize, newPublishIn[[128 - publishSize]byte]},
	{144 - publishSize, newPublishIn[[144 - publishSize]byte]},
	{160 - publishSize, newPublishIn[[160 - publishSize]byte]},
	{192 - publishSize, newPublishIn[[192 - publishSize]byte]},
	{224 - publishSize, newPublishIn[[224 - publishSize]byte]},
	{256 - publishSize, newPublishIn[[256 - publishSize]byte]},
	{320 - publishSize, newPublishIn[[320 - publishSize]byte]},
	{384 - publishSize, newPublishIn[[384 - publishSize]byte]},
	{448 - publishSize, newPublishIn[[448 - publishSize]byte]},
	{512 - publishSize, newPublishIn[[512 - publishSize]byte]},
	{640 - publishSize, newPublishIn[[640 - publishSize]byte]},
	{768 - publishSize, newPublishIn[[768 - publishSize]byte]},
	{896 - publishSize, newPublishIn[[896 - publishSize]byte]},
	{1024 - publishSize, newPublishIn[[1024 - publishSize]byte]},
	{1280 - publishSize, newPublishIn[[1280 - publishSize]byte]},
	{1536 - publishSize, newPublishIn[[1536 - publishSize]byte]},
	{1792 - publishSize, newPublishIn[[1792 - publishSize]byte]},
	{2048 - publishSize, newPublishIn[[2048 - publishSize]byte]},
	{2688 - publishSize, newPublishIn[[2688 - publishSize]byte]},
	{3072 - publishSize, newPublishIn[[3072 - publishSize]byte]},
	{4096 - publishSize, newPublishIn[[4096 - publishSize]byte]},
	{5376 - publishSize, newPublishIn[[5376 - publishSize]byte]},
	{6144 - publishSize, newPublishIn[[6144 - publishSize]byte]},
	{8192 - publishSize, newPublishIn[[8192 - publishSize]byte]},
	{10240 - publishSize, newPublishIn[[10240 - publishSize]byte]},
	{12288 - publishSize, newPublishIn[[12288 - publishSize]byte]},
	{16384 - publishSize, newPublishIn[[16384 - publishSize]byte]},
	{20480 - publishSize, newPublishIn[[20480 - publishSize]byte]},
	{24576 - publishSize, newPublishIn[[24576 - publishSize]byte]},
	{32768 - publishSize, newPublishIn[[32768 - publishSize]byte]},
	{40960 - publishSize, newPublishIn[[40960 - publishSize]byte]},
	{49152 - publishSize, newPublishIn[[49152 - publishSize]byte]},
	{57344 - publishSize, newPublishIn[[57344 - publishSize]byte]},
	{65536 - publishSize, newPublishIn[[65536 - publishSize]byte]},
	{81920 - publishSize, newPublishIn[[81920 - publishSize]byte]},
	{98304 - publishSize, newPublishIn[[98304 - publishSize]byte]},
	{114688 - publishSize, newPublishIn[[114688 - publishSize]byte]},
	{131072 - publishSize, newPublishIn[[131072 - publishSize]byte]},
	{163840 - publishSize, newPublishIn[[163840 - publishSize]byte]},
	{196608 - publishSize, newPublishIn[[196608 - publishSize]byte]},
	{229376 - publishSize, newPublishIn[[229376 - publishSize]byte]},
	{262144 - publishSize, newPublishIn[[262144 - publishSize]byte]},
	{327680 - publishSize, newPublishIn[[327680 - publishSize]byte]},
	{393216 - publishSize, newPublishIn[[393216 - publishSize]byte]},
	{458752 - publishSize, newPublishIn[[458752 - publishSize]byte]},
	{524288 - publishSize, newPublishIn[[524288 - publishSize]byte]},
	{655360 - publishSize, newPublishIn[[655360 - publishSize]byte]},
	{786432 - publishSize, newPublishIn[[786432 - publishSize]byte]},
	{917504 - publishSize, newPublishIn[[917504 - publishSize]byte]},
	{1048576 - publishSize, newPublishIn[[1048576 - publishSize]byte]},
}

// smallClass maps a block size in 16-byte steps, up to smallMax, to the index of the
// smallest class that holds it, so that most frames skip the binary search.
var smallClass = func() (t [smallMax/16 + 1]uint8) {
	c := 0
	for i := range t {
		for publishClasses[c].capacity+publishSize < i*16 {
			c++
		}
		t[i] = uint8(c)
	}
	return t
}()

const smallMax = 2048

// maxBlock is the largest body newPublish places in a block.
var maxBlock = publishClasses[len(publishClasses)-1].capacity

// newPublish returns a zero *Publish and an n-byte buffer (n <= maxBlock) for its frame's
// body, in one block.
func newPublish(n int) (*Publish, []byte) {
	if total := n + publishSize; total <= smallMax {
		return publishClasses[smallClass[(total+15)/16]].alloc(n)
	}
	lo, hi := 0, len(publishClasses)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if publishClasses[mid].capacity < n {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return publishClasses[lo].alloc(n)
}
