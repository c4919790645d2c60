package fileblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
)

var (
	_ blob.Lifecycle = (*Store)(nil)
	_ blob.Toucher   = (*Store)(nil)
)

// walkPage bounds the objects passed to one call of a Walk callback.
const walkPage = 1000

// Walk implements blob.Walker. Directories are read in batches, so a flat
// directory of a million chunks is never held in memory at once.
func (s *Store) Walk(ctx context.Context, prefix string, fn func([]blob.ObjectInfo) error) error {
	start := s.root
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		if d := prefix[:i]; blob.ValidKey(d) == nil {
			start = filepath.Join(s.root, filepath.FromSlash(d))
		}
	}
	page := make([]blob.ObjectInfo, 0, walkPage)
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		err := fn(page)
		page = page[:0]
		return err
	}
	var walkDir func(dir string) error
	walkDir = func(dir string) error {
		f, err := os.Open(dir)
		if notFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("walk %q in %s: %w", prefix, s.root, err)
		}
		defer f.Close()
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			ents, err := f.ReadDir(walkPage)
			for _, d := range ents {
				if strings.HasPrefix(d.Name(), reservedPrefix) {
					continue
				}
				p := filepath.Join(dir, d.Name())
				rel, rerr := filepath.Rel(s.root, p)
				if rerr != nil {
					return rerr
				}
				key := filepath.ToSlash(rel)
				if d.IsDir() {
					if dk := key + "/"; strings.HasPrefix(dk, prefix) || strings.HasPrefix(prefix, dk) {
						if err := walkDir(p); err != nil {
							return err
						}
					}
					continue
				}
				if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
					continue
				}
				info, ierr := d.Info()
				if notFound(ierr) {
					continue // deleted meanwhile
				}
				if ierr != nil {
					return fmt.Errorf("walk %q in %s: %w", prefix, s.root, ierr)
				}
				page = append(page, blob.ObjectInfo{Key: key, Size: info.Size(), ModTime: info.ModTime()})
				if len(page) == walkPage {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			if errors.Is(err, io.EOF) || (err == nil && len(ents) == 0) {
				return nil
			}
			if notFound(err) {
				// The directory was removed meanwhile (a concurrent
				// Delete of its last objects): nothing more in it.
				return nil
			}
			if err != nil {
				return fmt.Errorf("walk %q in %s: %w", prefix, s.root, err)
			}
		}
	}
	if err := walkDir(start); err != nil {
		return err
	}
	return flush()
}

// Stat implements blob.Stater.
func (s *Store) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return blob.ObjectInfo{}, err
	}
	p, err := s.path(key)
	if err != nil {
		return blob.ObjectInfo{}, err
	}
	st, err := os.Stat(p)
	if notFound(err) {
		return blob.ObjectInfo{}, fmt.Errorf("stat %s in %s: %w", key, s.root, blob.ErrNotFound)
	}
	if err != nil {
		return blob.ObjectInfo{}, fmt.Errorf("stat %s in %s: %w", key, s.root, err)
	}
	if !st.Mode().IsRegular() {
		return blob.ObjectInfo{}, fmt.Errorf("stat %s in %s: not a regular file: %w", key, s.root, blob.ErrNotFound)
	}
	return blob.ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Touch implements blob.Toucher.
func (s *Store) Touch(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		if notFound(err) {
			return fmt.Errorf("touch %s in %s: %w", key, s.root, blob.ErrNotFound)
		}
		return fmt.Errorf("touch %s in %s: %w", key, s.root, err)
	}
	return nil
}
