// Package scripting is reserved for nslab's script language (checks such
// as `reach A B`, changes such as `link A B down`, at a prompt, in files
// and in Go tests). It holds no code yet: nothing here is implemented.
package scripting
