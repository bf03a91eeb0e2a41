package tracefile

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of arrays and objects a line may have,
// counting the record itself; it is encoding/json's limit, so both agree on
// what is valid.
const maxDepth = 10000

// syntaxError is a JSON syntax error at a byte offset of the line.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("at byte %d: %s", e.off, e.msg) }

func errAt(off int, format string, args ...any) *syntaxError {
	return &syntaxError{off: off, msg: fmt.Sprintf(format, args...)}
}

// describe names the byte at s[i] for an error message.
func describe(s []byte, i int) string {
	if i >= len(s) {
		return "end of line"
	}
	c := s[i]
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func skipWS(s []byte, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// strInfo says what a scanned string contains, so that decoding can take a
// fast path.
type strInfo struct {
	escaped  bool // has a backslash escape
	nonASCII bool
}

// scanString checks the JSON string starting at s[i] (a '"') and returns the
// index after its closing quote. When out is not nil the string is appended
// to *out, with each invalid UTF-8 byte replaced by U+FFFD.
func scanString(s []byte, i int, out *[]byte) (int, strInfo, error) {
	var info strInfo
	start := i
	i++
	copied := start // s[copied:i] is still to be appended to out
	for i < len(s) {
		c := s[i]
		if plainByte[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			i++
			if out != nil {
				*out = append(*out, s[copied:i]...)
			}
			return i, info, nil
		case c == '\\':
			info.escaped = true
			if i+1 >= len(s) {
				return 0, info, errAt(i+1, "unexpected end of line in string escape")
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(s) {
						return 0, info, errAt(k, "unexpected end of line in \\u escape")
					}
					if !isHex(s[k]) {
						return 0, info, errAt(k, "unexpected %s in \\u escape", describe(s, k))
					}
				}
				i += 6
			default:
				return 0, info, errAt(i+1, "invalid escape: %s after a backslash in string", describe(s, i+1))
			}
		case c < 0x20:
			return 0, info, errAt(i, "control character %s in string (must be escaped)", describe(s, i))
		case c < utf8.RuneSelf:
			i++
		default:
			info.nonASCII = true
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 && out != nil {
				*out = append(*out, s[copied:i]...)
				*out = append(*out, "\uFFFD"...)
				copied = i + 1
			}
			i += size
		}
	}
	return 0, info, errAt(len(s), "unexpected end of line in string starting at byte %d", start)
}

// plainByte marks the bytes that stand for themselves in a JSON string:
// printable ASCII other than '"' and '\\'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber checks the JSON number starting at s[i] and returns the index
// after it.
func scanNumber(s []byte, i int) (int, error) {
	start := i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return 0, errAt(i, "invalid number starting at byte %d: want a digit, got %s", start, describe(s, i))
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return 0, errAt(i, "invalid number starting at byte %d: want a digit after '.', got %s", start, describe(s, i))
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return 0, errAt(i, "invalid number starting at byte %d: want a digit in the exponent, got %s", start, describe(s, i))
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	return i, nil
}

// scanLiteral checks that s[i:] starts with lit (true, false or null).
func scanLiteral(s []byte, i int, lit string) (int, error) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(s) || s[i+k] != lit[k] {
			return 0, errAt(i+k, "invalid literal: want %q, got %s", lit, describe(s, i+k))
		}
	}
	return i + len(lit), nil
}

// scanValue checks the JSON value starting at s[i] (after whitespace) and
// returns the index after it. depth is the nesting depth of the container
// the value is in. When out is not nil the value is appended to *out
// without insignificant whitespace and with each invalid UTF-8 byte in its
// strings replaced by U+FFFD, so the copy is valid single-line JSON.
func scanValue(s []byte, i, depth int, out *[]byte) (int, error) {
	// stack holds the open containers: '{' or '['.
	var stackBuf [32]byte
	stack := stackBuf[:0]
	emit := func(c byte) {
		if out != nil {
			*out = append(*out, c)
		}
	}
	for {
		// A value is expected at s[i].
		i = skipWS(s, i)
		if i >= len(s) {
			return 0, errAt(i, "unexpected end of line: want a value")
		}
		var err error
		switch c := s[i]; c {
		case '{', '[':
			if depth+len(stack)+1 > maxDepth {
				return 0, errAt(i, "nesting deeper than %d levels", maxDepth)
			}
			emit(c)
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			i = skipWS(s, i+1)
			if i < len(s) && s[i] == closer {
				emit(closer)
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if i, err = scanKey(s, i, out); err != nil {
					return 0, err
				}
			}
			continue
		case '"':
			if i, _, err = scanString(s, i, out); err != nil {
				return 0, err
			}
		case 't', 'f', 'n':
			lit := "null"
			if c == 't' {
				lit = "true"
			} else if c == 'f' {
				lit = "false"
			}
			if i, err = scanLiteral(s, i, lit); err != nil {
				return 0, err
			}
			if out != nil {
				*out = append(*out, lit...)
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			start := i
			if i, err = scanNumber(s, i); err != nil {
				return 0, err
			}
			if out != nil {
				*out = append(*out, s[start:i]...)
			}
		default:
			return 0, errAt(i, "unexpected %s: want a value", describe(s, i))
		}
		// A value ended at s[i]: close containers until one continues.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			top := stack[len(stack)-1]
			closer := byte('}')
			if top == '[' {
				closer = ']'
			}
			i = skipWS(s, i)
			if i >= len(s) {
				return 0, errAt(i, "unexpected end of line: want ',' or %q", closer)
			}
			if s[i] == closer {
				emit(closer)
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if s[i] != ',' {
				return 0, errAt(i, "unexpected %s: want ',' or %q", describe(s, i), closer)
			}
			emit(',')
			i++
			if top == '{' {
				if i, err = scanKey(s, skipWS(s, i), out); err != nil {
					return 0, err
				}
			}
			break
		}
	}
}

// scanKey checks an object key and its colon starting at s[i] and returns
// the index after the colon.
func scanKey(s []byte, i int, out *[]byte) (int, error) {
	if i >= len(s) || s[i] != '"' {
		return 0, errAt(i, "unexpected %s: want an object key (a string)", describe(s, i))
	}
	i, _, err := scanString(s, i, out)
	if err != nil {
		return 0, err
	}
	i = skipWS(s, i)
	if i >= len(s) || s[i] != ':' {
		return 0, errAt(i, "unexpected %s after object key: want ':'", describe(s, i))
	}
	if out != nil {
		*out = append(*out, ':')
	}
	return i + 1, nil
}

// unquote decodes the body of a scanned JSON string (without its quotes)
// the way encoding/json does: escapes resolved, each invalid UTF-8 byte and
// each unpaired surrogate replaced by U+FFFD.
func unquote(b []byte) string {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			switch b[i+1] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(b[i+2:])); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default: // '"', '\\', '/'
				out = append(out, b[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\uFFFD"...)
			} else {
				out = append(out, b[i:i+size]...)
			}
			i += size
		}
	}
	return string(out)
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
