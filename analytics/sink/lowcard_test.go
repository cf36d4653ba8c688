package sink

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
)

// TestLowCardStrEncodesAsChGo checks that lowCardStr writes exactly the
// bytes of ch-go's ColLowCardinality for the same rows, across key widths
// and over a reused column.
func TestLowCardStrEncodesAsChGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mine := newLowCardStr()
	for _, distinct := range []int{1, 3, 256, 257, 5000, 70000} {
		t.Run(fmt.Sprint(distinct), func(t *testing.T) {
			want := new(proto.ColStr).LowCardinality()
			mine.Reset()
			for range 100_000 {
				v := ""
				switch rng.IntN(3) {
				case 0: // empty
				case 1:
					v = fmt.Sprint("v", rng.IntN(distinct))
				case 2: // a repeat of the previous row
					if n := want.Rows(); n > 0 {
						v = want.Row(n - 1)
					}
				}
				want.Append(v)
				mine.Append(v)
			}
			if mine.Rows() != want.Rows() || mine.Type() != want.Type() {
				t.Fatalf("rows %d type %s, want %d %s", mine.Rows(), mine.Type(), want.Rows(), want.Type())
			}
			for i := range want.Rows() {
				if mine.Row(i) != want.Row(i) {
					t.Fatalf("row %d: %q, want %q", i, mine.Row(i), want.Row(i))
				}
			}
			encode := func(c interface {
				proto.ColInput
				proto.Preparable
				proto.StateEncoder
			}) []byte {
				if err := c.Prepare(); err != nil {
					t.Fatal(err)
				}
				var b proto.Buffer
				c.EncodeState(&b)
				c.EncodeColumn(&b)
				return b.Buf
			}
			if got, exp := encode(mine), encode(want); !bytes.Equal(got, exp) {
				t.Fatalf("encoded %d bytes differ from ch-go's %d", len(got), len(exp))
			}
		})
	}
}
