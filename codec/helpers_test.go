package codec_test

import (
	"bufio"
	"bytes"
	"reflect"
)

func bufioReader(b []byte, size int) *bufio.Reader {
	return bufio.NewReaderSize(bytes.NewReader(b), size)
}

func equal(a, b any) bool { return reflect.DeepEqual(a, b) }
