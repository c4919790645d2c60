package fileblob

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/verneuil-go/verneuil/internal/blob"
)

// Tag implements blob.TagChecker with one stat(2): the tag is the object
// file's inode, size and modification time. Every Put renames a new file
// into place, so a changed object always has another inode.
func (s *Store) Tag(ctx context.Context, key, known string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("tag %s: %w", key, err)
	}
	p, err := s.path(key)
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", key, err)
	}
	fi, err := os.Stat(p)
	if notFound(err) || (err == nil && !fi.Mode().IsRegular()) {
		return "", fmt.Errorf("tag %s: %w", key, blob.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", key, err)
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	tag := fmt.Sprintf("%x-%x-%x", ino, fi.Size(), fi.ModTime().UnixNano())
	if known != "" && tag == known {
		return tag, fmt.Errorf("tag %s: %w", key, blob.ErrNotModified)
	}
	return tag, nil
}
