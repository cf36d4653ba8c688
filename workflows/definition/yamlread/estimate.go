package yamlread

import "bytes"

// preScan refuses, before yaml.v3 parses anything, a document whose tokens
// could make more than EstimateFactor × MaxValues nodes: parsing costs about 250 bytes and
// a few hundred nanoseconds per node, so a 1 MiB flow sequence "[a,a,...]"
// would otherwise take 0.8 s and 126 MB before any count could stop it.
// One pass over the bytes, no allocation.
func preScan(data []byte, lim Limits) error {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		// yaml.v3 transcodes UTF-16 with a BOM; the estimate reads bytes.
		return invalidf("UTF-16 documents are not accepted; use UTF-8")
	}
	if n, most := estimateNodes(data), EstimateFactor*lim.MaxValues; n > most {
		return limitf(LimitValues, "document is too complex: its tokens could make %d values, more than %d (%d times the limit of %d values)", n, most, EstimateFactor, lim.MaxValues)
	}
	return nil
}

// estimateNodes returns an upper bound of the nodes yaml.v3 builds for
// data (UTF-8), without knowing whether a byte is inside a string or a
// comment (which only makes it larger). Every node comes either from a
// token that starts after a blank or right after an indicator (scalars,
// aliases), or from an indicator itself (collections started by '[', '{',
// '-', ':' or '?'; empty values implied by '-', ':', '?', ',' or '}'), so
// counting those starts plus a fixed charge per indicator bounds the
// nodes. Typical documents estimate at 2-3 times their real count.
func estimateNodes(data []byte) int {
	n := 2 // the document and its root
	boundary := true
	var p1, p2 byte // the two bytes before c
	for _, c := range data {
		switch c {
		case ':', '?':
			// A simple or explicit key may start a block mapping or a
			// one-pair flow mapping and imply an empty key and value.
			n += 3
		case '-':
			// A block entry may start a sequence and imply an empty item.
			n += 2
		case ',':
			n += 2
		case '[', '{', '}', '*':
			n++
		}
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			boundary = true
		case isIndicator(c):
			if boundary {
				n++
			}
			boundary = true
		default:
			if boundary {
				n++
			}
			// NEL (C2 85), LS/PS (E2 80 A8/A9) and the BOM (EF BB BF)
			// separate tokens too.
			boundary = (p1 == 0xC2 && c == 0x85) ||
				(p2 == 0xE2 && p1 == 0x80 && (c == 0xA8 || c == 0xA9)) ||
				(p2 == 0xEF && p1 == 0xBB && c == 0xBF)
		}
		p2, p1 = p1, c
	}
	return n
}

// isIndicator reports YAML's indicator characters: a token may start right
// after one of them without a blank in between.
func isIndicator(c byte) bool {
	switch c {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return true
	}
	return false
}
