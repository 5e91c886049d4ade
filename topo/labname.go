package topo

import "fmt"

// CheckLabName returns why name cannot name a lab, or nil: at most 32
// bytes of lowercase letters, digits and '-', starting with a letter or
// digit. The CLI checks --name and lab arguments with it, so that a bad
// name given on the command line is reported as the flag's, not the file's.
func CheckLabName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a lab name cannot be empty")
	case len(name) > maxLabName:
		return fmt.Errorf("lab name %q is %d bytes, at most %d are allowed", name, len(name), maxLabName)
	case !labNameRE.MatchString(name):
		return fmt.Errorf("lab name %q may only have lowercase letters, digits and '-', and must start with a letter or digit", name)
	}
	return nil
}
