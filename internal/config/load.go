package config

import (
	"fmt"
	"os"
	"strings"
)

// FromEnv returns the configuration named by the VERNEUIL_CONFIG environment
// variable:
//
//   - unset, empty or blank: Default();
//   - "@/path/to/config.json": the JSON in that file;
//   - anything else: inline JSON.
//
// Errors are prefixed with "VERNEUIL_CONFIG: ", and with the file name when
// the configuration comes from a file.
func FromEnv() (*Config, error) {
	c, err := load(os.Getenv(EnvConfig), false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvConfig, err)
	}
	return c, nil
}

// Load returns the configuration named by spec, the value of verneuilctl's
// --config flag. It follows the rules of FromEnv, and in addition a spec that
// starts with neither "{" nor "@" is the path of a file. An empty spec gives
// Default(); a command that wants VERNEUIL_CONFIG to apply when --config is not
// given should call FromEnv instead.
//
// Errors about a file are prefixed with its name.
func Load(spec string) (*Config, error) {
	return load(spec, true)
}

func load(spec string, pathOK bool) (*Config, error) {
	s := strings.TrimSpace(spec)
	switch {
	case s == "":
		return Default(), nil
	case s[0] == '@':
		return loadFile(strings.TrimSpace(s[1:]))
	case s[0] == '{':
		return Parse([]byte(s))
	case pathOK:
		return loadFile(s)
	}
	c, err := Parse([]byte(s))
	if err != nil {
		// Most likely a file name without its "@".
		return nil, fmt.Errorf("%w (to read a file, write @/path/to/config.json)", err)
	}
	return c, nil // e.g. JSON after a byte-order mark
}

func loadFile(name string) (*Config, error) {
	if name == "" {
		return nil, fmt.Errorf("config: \"@\" must be followed by a file name")
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}
