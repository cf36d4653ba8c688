package llm

import (
	"encoding/json"
	"math"
)

// Token estimates. The gateway never tokenizes (tokenizers differ per
// provider and cost more than the call overhead we aim for); it counts the
// UTF-8 bytes of everything the model reads (message text, tool call
// arguments, tool declarations) and derives two bounds:
//
//   - a lower bound, bytes/6, used to refuse a request before sending it
//     when even that bound plus the requested completion exceeds the
//     model's context window. Common BPE tokenizers average about 4 bytes
//     per token on English and fewer on code or non-Latin scripts, so a
//     request refused here would have been refused by the provider too;
//     anything closer to the limit is left to the provider to judge.
//   - an upper estimate, bytes/3 plus per-message overhead and a flat
//     allowance per image, used for budget reservations and when a provider
//     reports no usage. Over-reserving only delays concurrent calls near the
//     limit; settlement uses the provider's real counts.
const (
	lowerBytesPerToken = 6
	upperBytesPerToken = 3
	tokensPerMessage   = 4
	tokensPerImage     = 1600
	// defaultCompletionReserve is reserved against the budget for the
	// completion when a request sets no max_tokens.
	defaultCompletionReserve = 1024
)

// promptSize measures what a request asks the model to read.
type promptSize struct {
	textBytes int64
	messages  int64
	images    int64
}

func measurePrompt(req *ChatRequest) promptSize {
	var s promptSize
	for i := range req.Messages {
		m := &req.Messages[i]
		s.messages++
		if n, ok := jsonStringLen(m.Content); ok {
			// The common case, a plain string: measured without decoding.
			s.textBytes += int64(n)
			s.textBytes += int64(len(m.Name))
			for _, tc := range m.ToolCalls {
				s.textBytes += int64(len(tc.Function.Name) + len(tc.Function.Arguments))
			}
			continue
		}
		parts, err := parseContent(m.Content)
		if err != nil {
			s.textBytes += int64(len(m.Content))
		}
		for _, p := range parts {
			switch p.Type {
			case "text":
				s.textBytes += int64(len(p.Text))
			case "image_url":
				s.images++
			default:
				s.textBytes += int64(len(p.raw))
			}
		}
		s.textBytes += int64(len(m.Name))
		for _, tc := range m.ToolCalls {
			s.textBytes += int64(len(tc.Function.Name) + len(tc.Function.Arguments))
		}
	}
	for _, t := range req.Tools {
		s.textBytes += int64(len(t.Function.Name) + len(t.Function.Description) + len(t.Function.Parameters))
	}
	return s
}

// lower is a lower bound on the prompt's tokens.
func (s promptSize) lower() int64 { return s.textBytes / lowerBytesPerToken }

// upper is a generous estimate of the prompt's tokens.
func (s promptSize) upper() int64 {
	return (s.textBytes+upperBytesPerToken-1)/upperBytesPerToken + s.messages*tokensPerMessage + 3 + s.images*tokensPerImage
}

// requestedMaxTokens is the completion bound the request asks for, 0 when
// none.
func requestedMaxTokens(req *ChatRequest) int {
	switch {
	case req.MaxCompletionTokens != nil && *req.MaxCompletionTokens > 0:
		return *req.MaxCompletionTokens
	case req.MaxTokens != nil && *req.MaxTokens > 0:
		return *req.MaxTokens
	}
	return 0
}

// contentPart is one part of a message's content.
type contentPart struct {
	Type     string
	Text     string
	ImageURL string
	raw      json.RawMessage
}

// parseContent reads a message content: a JSON string (one text part), an
// array of parts ({"type":"text","text":...} or
// {"type":"image_url","image_url":{"url":...}}), or nothing.
func parseContent(raw json.RawMessage) ([]contentPart, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []contentPart{{Type: "text", Text: s}}, nil
	}
	var wire []struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		ImageURL *struct {
			URL string `json:"url"`
		} `json:"image_url"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, err
	}
	var rawParts []json.RawMessage
	if err := json.Unmarshal(raw, &rawParts); err != nil {
		return nil, err
	}
	out := make([]contentPart, len(wire))
	for i, w := range wire {
		out[i] = contentPart{Type: w.Type, Text: w.Text, raw: rawParts[i]}
		if w.ImageURL != nil {
			out[i].ImageURL = w.ImageURL.URL
		}
	}
	return out, nil
}

// contentText is the text of a content: the string, or the text parts
// joined.
func contentText(raw json.RawMessage) string {
	parts, err := parseContent(raw)
	if err != nil {
		return ""
	}
	if len(parts) == 1 {
		return parts[0].Text
	}
	n := 0
	for _, p := range parts {
		n += len(p.Text)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		if p.Type == "text" {
			b = append(b, p.Text...)
		}
	}
	return string(b)
}

// cost is the price of usage at the model's prices (US dollars per million
// tokens), rounded with RoundCost. Prompt tokens read from the provider's
// prompt cache are priced at the cached input price when the model has
// one.
func cost(m Model, u Usage) float64 {
	in := float64(u.PromptTokens) * m.InputPerMTok
	if cached := u.cachedTokens(); cached > 0 && cached <= u.PromptTokens && m.CachedInputPerMTok > 0 {
		in = float64(u.PromptTokens-cached)*m.InputPerMTok + float64(cached)*m.CachedInputPerMTok
	}
	return RoundCost((in + float64(u.CompletionTokens)*m.OutputPerMTok) / 1e6)
}

// CostPrecision is the unit costs are rounded to: 1e-10 US dollars, far
// below any real token price (a token at $0.01 per million tokens is 1e-8).
const CostPrecision = 1e-10

// RoundCost rounds a cost in US dollars to CostPrecision, so that the float
// noise of the price arithmetic (1.5600000000000003e-05) does not reach
// responses, call records and step outputs, which then all show the same
// short value (1.56e-05). Sums of costs are rounded again.
func RoundCost(usd float64) float64 {
	if math.IsNaN(usd) || math.IsInf(usd, 0) {
		return usd
	}
	// An integer count of 1e-10 divided by 1e10 is the double nearest to
	// the decimal value, which formats as that decimal.
	return math.Round(usd*1e10) / 1e10
}

// jsonStringLen returns the UTF-8 length of the string a JSON string
// literal decodes to, without decoding it; ok is false when raw is not a
// well-formed string literal (the caller then decodes it the slow way).
func jsonStringLen(raw []byte) (n int, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return 0, false
	}
	body := raw[1 : len(raw)-1]
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '"':
			return 0, false
		case c != '\\':
			n++
			continue
		}
		i++
		if i >= len(body) {
			return 0, false
		}
		if body[i] != 'u' {
			n++
			continue
		}
		if i+5 > len(body) {
			return 0, false
		}
		r, ok := hex4(body[i+1 : i+5])
		if !ok {
			return 0, false
		}
		i += 4
		switch {
		case r < 0x80:
			n++
		case r < 0x800:
			n += 2
		case r >= 0xD800 && r < 0xDC00:
			n += 2 // high surrogate: with its low half, a 4-byte rune
		case r >= 0xDC00 && r < 0xE000:
			n += 2
		default:
			n += 3
		}
	}
	return n, true
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
