package sshconn

import (
	"fmt"
	"strings"
)

// Quote returns s as one POSIX shell word: it is wrapped in single quotes and every
// single quote inside is closed, escaped and reopened (quote, backslash, quote,
// quote). Words made only of safe characters are left bare. The result reads back as exactly s in sh, bash,
// dash and zsh, with no expansion of any kind. It is the one quoting function of
// ftgate: every remote command and every path in a rendered batch script goes through it.
// s must not contain NUL (no shell word can); Command refuses such strings.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isSafeWord(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isSafeWord reports whether s consists only of characters that no POSIX shell treats
// specially anywhere in a word, so it may be written without quotes.
func isSafeWord(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == '/', c == ',', c == ':', c == '@', c == '+', c == '%':
		default:
			return false
		}
	}
	// A leading '-' is harmless to the shell; '~' and '=' are excluded above.
	return true
}

// Command joins argv into one shell command line, each argument quoted by Quote.
// It refuses an empty argv and any argument containing a NUL byte.
func Command(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", fmt.Errorf("build command: empty argv")
	}
	var b strings.Builder
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return "", fmt.Errorf("build command: argument %d contains a NUL byte", i)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(Quote(a))
	}
	return b.String(), nil
}
