package sink

import (
	"errors"
	"math"

	"github.com/ClickHouse/ch-go/proto"
)

// lowCardStr is a LowCardinality(String) column that builds its dictionary
// as rows are appended, and keys a value equal to the previous row's
// without hashing it. ch-go's ColLowCardinality hashes every value when the
// block is encoded: with 20 such columns, often empty or repeated, that
// was the largest part of the sink's insert. The encoding is ch-go's own
// (ColLowCardinalityRaw, same dictionary order and key width); a test
// checks the bytes against ColLowCardinality's.
type lowCardStr struct {
	raw     proto.ColLowCardinalityRaw
	index   proto.ColStr
	kv      map[string]int
	keys    []int
	last    string
	lastKey int
}

func newLowCardStr() *lowCardStr {
	c := &lowCardStr{kv: map[string]int{}}
	c.raw.Index = &c.index
	return c
}

// Append adds a row.
func (c *lowCardStr) Append(v string) {
	if len(c.keys) > 0 && v == c.last {
		c.keys = append(c.keys, c.lastKey)
		return
	}
	k, ok := c.kv[v]
	if !ok {
		k = c.index.Rows()
		c.index.Append(v)
		c.kv[v] = k
	}
	c.keys = append(c.keys, k)
	c.last, c.lastKey = v, k
}

// AppendArr adds rows.
func (c *lowCardStr) AppendArr(vs []string) {
	for _, v := range vs {
		c.Append(v)
	}
}

// Row returns the i-th row.
func (c *lowCardStr) Row(i int) string { return c.index.Row(c.keys[i]) }

// Rows is the number of rows.
func (c *lowCardStr) Rows() int { return len(c.keys) }

// Type is LowCardinality(String).
func (c *lowCardStr) Type() proto.ColumnType { return c.raw.Type() }

// Reset empties the column, keeping its memory.
func (c *lowCardStr) Reset() {
	c.raw.Reset()
	clear(c.kv)
	c.keys = c.keys[:0]
	c.last, c.lastKey = "", 0
}

// Prepare fills the raw column's keys with the narrowest key type, as
// ColLowCardinality.Prepare does; ch-go calls it before encoding.
func (c *lowCardStr) Prepare() error {
	c.raw.Keys8, c.raw.Keys16, c.raw.Keys32, c.raw.Keys64 = c.raw.Keys8[:0], c.raw.Keys16[:0], c.raw.Keys32[:0], c.raw.Keys64[:0]
	switch n := c.index.Rows(); {
	case n <= math.MaxUint8+1:
		c.raw.Key = proto.KeyUInt8
		for _, k := range c.keys {
			c.raw.Keys8 = append(c.raw.Keys8, uint8(k))
		}
	case n <= math.MaxUint16+1:
		c.raw.Key = proto.KeyUInt16
		for _, k := range c.keys {
			c.raw.Keys16 = append(c.raw.Keys16, uint16(k))
		}
	case uint64(n) <= math.MaxUint32+1:
		c.raw.Key = proto.KeyUInt32
		for _, k := range c.keys {
			c.raw.Keys32 = append(c.raw.Keys32, uint32(k))
		}
	default:
		c.raw.Key = proto.KeyUInt64
		for _, k := range c.keys {
			c.raw.Keys64 = append(c.raw.Keys64, uint64(k))
		}
	}
	return nil
}

// EncodeState writes the key serialization version.
func (c *lowCardStr) EncodeState(b *proto.Buffer) { c.raw.EncodeState(b) }

// EncodeColumn writes the dictionary and the keys (after Prepare).
func (c *lowCardStr) EncodeColumn(b *proto.Buffer) { c.raw.EncodeColumn(b) }

// WriteColumn is EncodeColumn for ch-go's writer.
func (c *lowCardStr) WriteColumn(w *proto.Writer) { c.raw.WriteColumn(w) }

// DecodeColumn is not needed: the column is only inserted.
func (c *lowCardStr) DecodeColumn(*proto.Reader, int) error {
	return errors.New("sink: lowCardStr is insert-only")
}
