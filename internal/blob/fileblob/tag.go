package fileblob

import (
	"context"
	"fmt"
	"io/fs"
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
	tag := tagOf(fi)
	if known != "" && tag == known {
		return tag, fmt.Errorf("tag %s: %w", key, blob.ErrNotModified)
	}
	return tag, nil
}

// GetTagged implements blob.TaggedGetter: the tag is the opened file's
// (as Tag computes it), so it always matches the bytes returned.
func (s *Store) GetTagged(ctx context.Context, key, known string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("get %s: %w", key, err)
	}
	f, err := s.openObject(key)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", key, err)
	}
	tag := tagOf(fi)
	if known != "" && tag == known {
		return nil, tag, fmt.Errorf("get %s: %w", key, blob.ErrNotModified)
	}
	data, err := readAll(f)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", key, err)
	}
	return data, tag, nil
}

func tagOf(fi fs.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%x-%x-%x", ino, fi.Size(), fi.ModTime().UnixNano())
}
