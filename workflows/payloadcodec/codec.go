// Package payloadcodec encrypts the payloads Gateflow stores in Temporal
// (workflow and activity inputs and results, memos, query and update
// values, failure messages) with AES-256-GCM, so that step inputs, outputs
// and headers built from input are not readable in the history. It is a
// converter.PayloadCodec for converter.NewCodecDataConverter, used by the
// worker, the ingress's Temporal client and gateflow dev alike, and served
// to the Temporal Web UI and CLI by the ingress's codec endpoint.
//
// Keys come from a key file; each encrypted payload names its key in its
// metadata, so keys rotate: the first key of the file encrypts, every key
// of the file decrypts. Payloads without encryption metadata (histories
// written before the codec was enabled) pass through unchanged.
package payloadcodec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"

	"github.com/gateflow/gateflow/workflows/definition/yamlread"
)

// Metadata of an encrypted payload.
const (
	// EncodingEncrypted is the metadata "encoding" of an encrypted payload
	// (the name Temporal's samples use).
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that encrypted the payload.
	MetadataKeyID = "encryption-key-id"
	// MetadataCipher names the cipher, for whoever reads a history.
	MetadataCipher = "encryption-cipher"
	// Cipher is the value of MetadataCipher.
	Cipher = "AES-256-GCM"
)

// Errors; messages name key ids, never key material.
var (
	// ErrUnknownKey: a payload names a key the key file does not hold.
	ErrUnknownKey = errors.New("payload encrypted with a key that is not in the payload key file")
	// ErrDecrypt: the key of that id does not open the payload (another
	// key under the same id, or a corrupted payload).
	ErrDecrypt = errors.New("payload cannot be decrypted")
	// ErrKeyFile: the key file is malformed.
	ErrKeyFile = errors.New("invalid payload key file")
)

// KeyFile is the payload key file:
//
//	keys:
//	  - id: 2026-12        # the first key encrypts
//	    key: <base64 of 32 random bytes>
//	  - id: 2026-06        # older keys still decrypt
//	    key: <base64>
//
// Generate a key with: head -c 32 /dev/urandom | base64
type KeyFile struct {
	Keys []KeyEntry `yaml:"keys"`
}

// KeyEntry is one key of the file.
type KeyEntry struct {
	ID  string `yaml:"id"`
	Key string `yaml:"key"`
}

// String never shows the key.
func (k KeyEntry) String() string { return "payload key " + k.ID }

// GoString never shows the key either (%#v).
func (k KeyEntry) GoString() string { return k.String() }

// LogValue keeps the key out of structured logs.
func (k KeyEntry) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON keeps the key out of any JSON the entry ends up in.
func (k KeyEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"id": k.ID, "key": "[redacted]"})
}

var keyIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Codec is the AES-256-GCM payload codec. It holds ciphers, not key bytes.
type Codec struct {
	primary string // id of the encrypting key
	aeads   map[string]cipher.AEAD
	order   []string
}

// New returns the codec of the entries: the first encrypts, all decrypt.
// Errors name entries by position and id, never by key.
func New(entries []KeyEntry) (*Codec, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrKeyFile)
	}
	c := &Codec{aeads: make(map[string]cipher.AEAD, len(entries))}
	var errs []error
	for i, e := range entries {
		if !keyIDRe.MatchString(e.ID) {
			errs = append(errs, fmt.Errorf("keys[%d]: id must be 1-64 letters, digits, '.', '_' or '-'", i))
			continue
		}
		if _, dup := c.aeads[e.ID]; dup {
			errs = append(errs, fmt.Errorf("keys[%d]: id %s is used twice", i, e.ID))
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(e.Key)
		if err != nil || len(raw) != 32 {
			errs = append(errs, fmt.Errorf("keys[%d] (id %s): key must be 32 bytes in standard base64", i, e.ID))
			continue
		}
		block, err := aes.NewCipher(raw)
		clear(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys[%d] (id %s): %v", i, e.ID, err))
			continue
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys[%d] (id %s): %v", i, e.ID, err))
			continue
		}
		c.aeads[e.ID] = aead
		c.order = append(c.order, e.ID)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, errors.Join(errs...))
	}
	c.primary = c.order[0]
	return c, nil
}

// LoadFile reads a key file (through the bounded YAML reader).
func LoadFile(path string) (*Codec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("payload key file: %w", err)
	}
	var f KeyFile
	if err := yamlread.ReadInto(b, yamlread.Limits{MaxBytes: 1 << 20}, &f); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrKeyFile, path, err)
	}
	c, err := New(f.Keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// KeyIDs lists the key ids, the encrypting one first.
func (c *Codec) KeyIDs() []string { return append([]string(nil), c.order...) }

// aad binds the ciphertext to its key id and cipher, so that metadata
// cannot be swapped onto another payload's data unnoticed.
func aad(keyID string) []byte { return []byte(Cipher + "/" + keyID) }

// Encode implements converter.PayloadCodec: each payload (metadata and
// data) is marshalled and sealed with the first key under a random nonce.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.primary]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("encrypt payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("encrypt payload: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(c.primary),
				MetadataCipher:             []byte(Cipher),
			},
			Data: aead.Seal(nonce, nonce, plain, aad(c.primary)),
		}
	}
	return out, nil
}

// Decode implements converter.PayloadCodec: encrypted payloads are opened
// with the key they name; others (written before the codec) pass through.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return payloads, fmt.Errorf("%w (key id %q; known: %v)", ErrUnknownKey, id, c.order)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return payloads, fmt.Errorf("%w with key %q: too short", ErrDecrypt, id)
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], aad(id))
		if err != nil {
			return payloads, fmt.Errorf("%w with key %q: another key under this id, or corrupted data", ErrDecrypt, id)
		}
		dec := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, dec); err != nil {
			return payloads, fmt.Errorf("%w with key %q: %v", ErrDecrypt, id, err)
		}
		out[i] = dec
	}
	return out, nil
}

// DataConverter wraps Temporal's default data converter with the codec.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// ApplyTo makes a Temporal client (and the workers built on it) encrypt
// payloads, failure messages and stack traces included (they move into
// the failure's encoded attributes).
func (c *Codec) ApplyTo(opts *client.Options) {
	dc := c.DataConverter()
	opts.DataConverter = dc
	opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}
