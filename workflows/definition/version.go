package definition

import (
	"strconv"
	"strings"
)

// CompareVersions orders versions for "latest": -1 when a < b, 0 when
// equal, +1 when a > b. Two integers compare numerically ("10" > "9"); two
// dotted numeric versions compare part by part, semver-like ("1.10.0" >
// "1.9.2", "1.2" < "1.2.1", an optional leading "v" and a "-pre" suffix
// that sorts before the release); anything else, and mixtures, compare
// lexically. Numeric versions sort after non-numeric ones, so a scheme
// change to numbers moves "latest" forward.
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	va, aok := parseVersion(a)
	vb, bok := parseVersion(b)
	switch {
	case aok && bok:
		if c := compareParts(va.parts, vb.parts); c != 0 {
			return c
		}
		// A pre-release sorts before its release.
		switch {
		case va.pre == vb.pre:
		case va.pre == "":
			return 1
		case vb.pre == "":
			return -1
		default:
			if c := compareLexical(va.pre, vb.pre); c != 0 {
				return c
			}
		}
		return compareLexical(a, b)
	case aok:
		return 1
	case bok:
		return -1
	}
	return compareLexical(a, b)
}

type version struct {
	parts []string // decimal digits without leading zeros
	pre   string
}

func parseVersion(s string) (version, bool) {
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i] // build metadata does not order
	}
	var v version
	if i := strings.IndexByte(s, '-'); i >= 0 {
		v.pre = s[i+1:]
		s = s[:i]
		if v.pre == "" {
			return v, false
		}
	}
	if s == "" {
		return v, false
	}
	for _, p := range strings.Split(s, ".") {
		if p == "" {
			return v, false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return v, false
			}
		}
		p = strings.TrimLeft(p, "0")
		if p == "" {
			p = "0"
		}
		v.parts = append(v.parts, p)
	}
	return v, true
}

// compareParts compares numeric parts of any length; missing parts are 0.
func compareParts(a, b []string) int {
	for i := 0; i < max(len(a), len(b)); i++ {
		pa, pb := "0", "0"
		if i < len(a) {
			pa = a[i]
		}
		if i < len(b) {
			pb = b[i]
		}
		if len(pa) != len(pb) {
			if len(pa) < len(pb) {
				return -1
			}
			return 1
		}
		if pa != pb {
			if pa < pb {
				return -1
			}
			return 1
		}
	}
	return 0
}

func compareLexical(a, b string) int {
	// Compare numeric identifiers of a pre-release by value when both are.
	if na, err := strconv.ParseUint(a, 10, 64); err == nil {
		if nb, err := strconv.ParseUint(b, 10, 64); err == nil {
			switch {
			case na < nb:
				return -1
			case na > nb:
				return 1
			}
		}
	}
	return strings.Compare(a, b)
}

// LatestVersion returns the greatest of versions by CompareVersions, or ""
// when there is none.
func LatestVersion(versions []string) string {
	best := ""
	for i, v := range versions {
		if i == 0 || CompareVersions(v, best) > 0 {
			best = v
		}
	}
	return best
}
